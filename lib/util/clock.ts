// The wall clock as RFC 3339 text, for lines written per request (the server's log, the audit
// log): the same string new Date().toISOString() gives, made once per millisecond.

let madeAt = NaN;
let made = '';

/** Now, as new Date().toISOString() says it. */
export function isoNow(): string {
  const ms = Date.now();
  if (ms !== madeAt) [madeAt, made] = [ms, new Date(ms).toISOString()];
  return made;
}
