// The type of working-directory.js, for cmd/common/cli.ts.
export declare const WORKING_DIRECTORY_GONE: string;
