// The wire and disk formats: protobuf loading, framing and decode-then-validate.
export * from './proto.ts';
export * from './frame.ts';
export * from './check.ts';
export * from './messages.ts';
export type * from './types.ts';
