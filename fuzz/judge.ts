// The judgement of one answer in `npm run fuzz` (fuzz/main.ts), apart from the run so that it can
// be tested with answers it must reject (test/fuzz.test.ts).
import type { FuzzRequest } from './requests';
import type { ResponseChecker } from './response-checker';

export interface Violation {
  readonly kind: '5xx' | 'problem' | 'schema' | 'stock-changed' | 'no-answer' | 'disagreement' | 'polluted';
  readonly detail: string;
  readonly request?: FuzzRequest;
}

export interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
  /** The path as sent (after the client resolved "." and ".."). */
  readonly path: string;
  readonly headers?: { get(name: string): string | null };
}

/** Changes nothing but `violations`; returns the parsed JSON body, if it is JSON. */
export function judge(checker: ResponseChecker, request: FuzzRequest, answer: Answer, stockBefore: string, stockAfter: string, violations: Violation[]): unknown {
  const json = answer.contentType?.includes('json') === true && answer.text !== '' ? safeParse(answer.text) : undefined;
  if (answer.status >= 500) violations.push({ kind: '5xx', detail: `${answer.status} ${answer.text.slice(0, 300)}`, request });
  if (answer.status >= 400 && request.method !== 'HEAD') {
    const problem = json as { status?: unknown; code?: unknown } | undefined;
    if (!answer.contentType?.startsWith('application/problem+json') || problem === undefined || problem.status !== answer.status || typeof problem.code !== 'string') {
      violations.push({ kind: 'problem', detail: `${answer.status} ${answer.contentType} ${answer.text.slice(0, 300)}`, request });
    }
  }
  try {
    checker.check(request.method, answer.path, answer.status, answer.contentType, json, answer.headers);
  } catch (error) {
    violations.push({ kind: 'schema', detail: (error as Error).message, request });
  }
  if (answer.status >= 400 && stockAfter !== stockBefore) violations.push({ kind: 'stock-changed', detail: `${answer.status}: ${stockBefore.slice(0, 300)} -> ${stockAfter.slice(0, 300)}`, request });
  return json;
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
