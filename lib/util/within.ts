// Waiting for something, but not for ever: a stop that waits for requests, a backup, a close.

/**
 * Whether `p` fulfils within `ms`: true when it does, false once the time is up (`p` is left to
 * go on), and `p`'s rejection when it rejects first. The timer is cleared either way.
 */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const up = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), up]);
  } finally {
    clearTimeout(timer);
  }
}
