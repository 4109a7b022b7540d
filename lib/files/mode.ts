// A file's permission bits as a message shows them: the form `stat` prints ("Access: (0770/...)")
// and chmod, umask and the provisioning config's "Mode" take, so what a message says can be
// compared with `stat` and pasted into chmod as it stands.

/**
 * The permission bits of `mode` (a stat's: the file type is left out) as four octal digits, the
 * special bits first: "0770", "0600", "1777" for a sticky directory every user may write in.
 */
export function modeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}
