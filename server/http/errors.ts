/**
 * Every error the registry answers with, in one table: status and text as
 * EPR sends them. Routes throw `HttpError`s; one Express handler writes them.
 */
export const ERRORS = {
  routeNotFound: { status: 404, text: '404 page not found' },
  packageNotFound: { status: 404, text: 'package revision not found' },
  resourceNotFound: { status: 404, text: 'resource not found' },
  artifactNotFound: { status: 404, text: 'artifact not found' },
  signatureNotFound: { status: 404, text: 'signature file not found' },
  invalidPackageVersion: { status: 400, text: 'invalid package version' },
  invalidPath: { status: 400, text: 'invalid path' },
  methodNotAllowed: { status: 405, text: 'method not allowed' },
  rangeNotSatisfiable: { status: 416, text: 'requested range not satisfiable' },
  internal: { status: 500, text: 'internal server error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class HttpError extends Error {
  constructor(readonly status: number, readonly text: string, readonly headers: Record<string, string> = {}) {
    super(text);
  }

  static of(code: ErrorCode, headers?: Record<string, string>): HttpError {
    return new HttpError(ERRORS[code].status, ERRORS[code].text, headers);
  }

  /** A 400 for a bad query value; the text names the parameter and the value. */
  static badRequest(text: string): HttpError {
    return new HttpError(400, text);
  }
}
