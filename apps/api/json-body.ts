// The request body as JSON, read straight from the stream: what `express.json()` did for us,
// without the layers (type-is, raw-body, iconv, on-finished) that cost the hot path more than
// the Redis call did (docs/benchmarks.md, the profile). The contract is the one the API had:
// - no body, or a body whose Content-Type is not JSON: `request.body` stays undefined (the route
//   that needs one answers 415);
// - `application/json` or `application/*+json`, UTF-8 only (another charset: 415), no
//   Content-Encoding (gzip and friends: 415; bodies are small, and an inflater is a bomb risk);
// - more than `limitBytes` (declared or read): 413 `payload_too_large`, read no further;
// - not an object or array at the top, or not JSON: 400 `validation_failed`; empty: `{}`.
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { StockholdError } from '../../lib/errors';

const jsonTypePattern = /^application\/(?:[!#$%&'*.^_`|~0-9A-Za-z-]+\+)?json$/i;
const charsetPattern = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/** Whether the request says it carries a body (RFC 9112: Content-Length or Transfer-Encoding). */
function hasBody(request: IncomingMessage): boolean {
  return request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');
}

/** Whether `contentType` names JSON (the media type before any parameter). */
export function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semicolon = contentType.indexOf(';');
  return jsonTypePattern.test((semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim());
}

function parseFailed(detail: string): StockholdError {
  return new StockholdError('validation_failed', `The body is not valid JSON: ${detail}`, { errors: [{ field: 'body', message: 'is not valid JSON' }] });
}

/** Parses a JSON text that must be an object or an array (strict, as express.json was). */
export function parseStrictJson(text: string): unknown {
  // A UTF-8 byte order mark is not JSON, but express.json() took it; so do we.
  let first = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (first < text.length && (text[first] === ' ' || text[first] === '\t' || text[first] === '\n' || text[first] === '\r')) first += 1;
  if (first === text.length) return {};
  if (text[first] !== '{' && text[first] !== '[') throw parseFailed('the top level must be an object or an array');
  try {
    return JSON.parse(first === 0 ? text : text.slice(first)) as unknown;
  } catch (error) {
    throw parseFailed((error as Error).message);
  }
}

export function jsonBody(limitBytes: number): RequestHandler {
  const tooLarge = () => new StockholdError('payload_too_large', `The body is larger than ${limitBytes / 1024} KiB`);
  return (request, response, next) => {
    // Read once: a request that falls through one mounted router into the next (an unknown
    // /v1/admin path reaches /v1) meets this again with its stream already ended.
    if (request.body !== undefined || request.readableEnded || !hasBody(request) || !isJsonType(request.headers['content-type'])) {
      next();
      return;
    }
    const charset = charsetPattern.exec(request.headers['content-type']!)?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      next(new StockholdError('unsupported_media_type', `Charset ${charset} is not supported: send UTF-8`));
      return;
    }
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      next(new StockholdError('unsupported_media_type', `Content-Encoding ${encoding} is not supported: send the body uncompressed`));
      return;
    }
    // Too large: the rest of the body is not read, so the connection cannot carry another request.
    const refuseTooLarge = () => {
      response.setHeader('Connection', 'close');
      return tooLarge();
    };
    const declared = request.headers['content-length'];
    if (declared !== undefined && Number(declared) > limitBytes) {
      next(refuseTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (error: unknown) => {
      if (settled) return;
      settled = true;
      request.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      next(error);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limitBytes) {
        // Read no further: the rest is dropped with the connection once the 413 is written.
        request.pause();
        settle(refuseTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      try {
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, received).toString('utf8');
        request.body = parseStrictJson(text);
        settle(undefined);
      } catch (error) {
        settle(error);
      }
    };
    const onError = (error: Error) => settle(new StockholdError('validation_failed', `The body could not be read: ${error.message}`, { errors: [{ field: 'body', message: 'could not be read' }] }));
    const onAborted = () => settle(new StockholdError('validation_failed', 'The request was aborted while its body was read', { errors: [{ field: 'body', message: 'aborted' }] }));
    request.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  };
}
