// Holds a response to the OpenAPI document (apps/api/openapi.ts), for every response the
// integration tests receive (test/support/harness.ts) and every one `npm run fuzz` provokes:
// the operation is found by method and path template, the status must be documented for it, and
// the body must be valid against the documented schema of its content type (Ajv, the JSON Schema
// 2020-12 dialect of OpenAPI 3.1). A response that contradicts the document throws, failing the
// test that caused it. Routes outside the document (/healthz, /metrics, the dashboard's assets)
// and bodies that are not JSON are not checked.
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';

const documentId = 'https://stockhold.dev/openapi.json';

interface Operation {
  readonly method: string;
  readonly pattern: RegExp;
  readonly pointer: string;
  readonly responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, { $ref?: string; required?: boolean }> }>;
}

interface DocumentShape {
  paths: Record<string, Record<string, { responses: Operation['responses'] }>>;
  components?: { headers?: Record<string, { required?: boolean }> };
}

export class ResponseChecker {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  private readonly operations: Operation[] = [];
  private readonly validators = new Map<string, ValidateFunction>();
  /** Responses checked, by operation and status: what the suite exercised. */
  readonly checked = new Map<string, number>();

  private readonly headerComponents: Record<string, { required?: boolean }>;

  constructor(given: object) {
    const document = given as DocumentShape;
    this.headerComponents = document.components?.headers ?? {};
    // The formats the document uses: times as the API writes them (toISOString), UUIDs.
    this.ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/);
    this.ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    this.ajv.addSchema({ ...document, $id: documentId });
    for (const [template, item] of Object.entries(document.paths)) {
      // As Express routes them: any case, with or without a trailing slash.
      const pattern = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}/?$`, 'i');
      for (const [method, operation] of Object.entries(item)) {
        if (typeof operation !== 'object' || operation === null || !('responses' in operation)) continue;
        this.operations.push({ method: method.toUpperCase(), pattern, pointer: `/paths/${escapePointer(template)}/${method}`, responses: operation.responses });
      }
    }
  }

  /**
   * Throws when the response contradicts the document; silent for what the document does not
   * cover. With `headers`, a header the document says is required must be there.
   */
  check(method: string, url: string, status: number, contentType: string | null, body: unknown, headers?: { get(name: string): string | null }): void {
    const path = url.split('?')[0]!;
    const operation = this.operations.find((candidate) => candidate.method === method && candidate.pattern.test(path));
    if (operation === undefined) return;
    const response = operation.responses[String(status)];
    if (response === undefined) throw new Error(`${method} ${path} answered ${status}, which the OpenAPI document does not list for it (${Object.keys(operation.responses).join(', ')})`);
    if (headers !== undefined) {
      for (const [name, declared] of Object.entries(response.headers ?? {})) {
        const required = declared.$ref === undefined ? declared.required : this.headerComponents[declared.$ref.split('/').pop()!]?.required;
        if (required === true && headers.get(name) === null) throw new Error(`${method} ${path} ${status} answered without the ${name} header the OpenAPI document requires`);
      }
    }
    const mediaType = (contentType ?? '').split(';')[0]!.trim();
    if (response.content === undefined) return;
    if (!(mediaType in response.content)) throw new Error(`${method} ${path} ${status} answered ${mediaType || 'no content type'}; the document lists ${Object.keys(response.content).join(', ')}`);
    if (!mediaType.endsWith('json')) return;
    const key = `${operation.pointer}/responses/${status}/content/${escapePointer(mediaType)}/schema`;
    let validate = this.validators.get(key);
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: `${documentId}#${key}` });
      this.validators.set(key, validate);
    }
    if (!validate(body)) {
      throw new Error(`${method} ${path} ${status} contradicts the OpenAPI document: ${this.ajv.errorsText(validate.errors)}; body ${JSON.stringify(body).slice(0, 500)}`);
    }
    const label = `${operation.method} ${operation.pointer} ${status}`;
    this.checked.set(label, (this.checked.get(label) ?? 0) + 1);
  }
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
