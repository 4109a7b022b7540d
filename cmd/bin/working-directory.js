// The one wording of a working directory that was removed: launch.js says it before TypeScript
// loads (tsx would fail on it), cmd/common/cli.ts when a program meets it later (a relative path).
// Plain JavaScript, importing nothing, so that launch.js may load it first.
export const WORKING_DIRECTORY_GONE = 'the working directory no longer exists (it was removed since this shell entered it): cd to one that does';
