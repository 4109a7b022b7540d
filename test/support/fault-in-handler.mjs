// Preloaded into a server (NODE_OPTIONS=--import): a bug in an event handler, outside any
// command's await. The first connection a server accepts (TLS or plain: every server of Node's
// listens through net.Server) meets, as FAULT_IN_HANDLER names:
//   throw   an exception thrown in the listener (uncaughtException);
//   reject  a promise rejected that nothing awaits (unhandledRejection).
// With FAULT_IN_HANDLER=after-output, any program throws so in the turn after its first write to
// standard output (a command's result written, and then a stray callback); with
// FAULT_IN_HANDLER=in-write, while a file it writes is still a temporary one beside its
// destination (at its fsync, which then never returns). With FAULT_IN_HANDLER=in-action, inside a
// command's own await: the digest of a hash fed the text "fault-in-action" (cert-utility measure's
// of a file holding it) throws what JSON.parse throws on a text it cannot read, its message
// quoting that text ("hush-canary"), as a value just decrypted.
// The error's message carries a canary that must show only under CERTIFIER_DEBUG=1.
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import net from 'node:net';

const fault = process.env.FAULT_IN_HANDLER;
const injected = () => new TypeError('an injected fault: canary-of-fault-in-handler');
if (fault === 'after-output') {
  const write = process.stdout.write;
  process.stdout.write = function (...args) {
    process.stdout.write = write;
    setImmediate(() => {
      throw injected();
    });
    return write.apply(this, args);
  };
}
if (fault === 'in-action') {
  const Hash = Object.getPrototypeOf(createHash('sha256'));
  const { update, digest } = Hash;
  const fed = new WeakSet();
  Hash.update = function (data, ...rest) {
    if (String(data).includes('fault-in-action')) fed.add(this);
    return update.call(this, data, ...rest);
  };
  Hash.digest = function (...args) {
    if (fed.has(this)) return JSON.parse('{"k":hush-canary}');
    return digest.apply(this, args);
  };
}
if (fault === 'in-write') {
  const handle = await fs.open('/dev/null');
  const FileHandle = Object.getPrototypeOf(handle);
  await handle.close();
  FileHandle.sync = function () {
    setImmediate(() => {
      throw injected();
    });
    return new Promise(() => {});
  };
}
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  this.prependOnceListener('connection', () => {
    const e = injected();
    if (fault === 'reject') void Promise.reject(e);
    else throw e;
  });
  return listen.apply(this, args);
};
