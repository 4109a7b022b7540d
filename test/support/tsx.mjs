// mocha's loader (.mocharc.json): tsx without its disk cache. tsx keeps compiled sources in
// $TMPDIR/tsx-UID, a folder it never checks is this user's, so another local user who made it
// first could have the tests run their code. tsx reads the variable once, when it loads.
process.env.TSX_DISABLE_CACHE = '1';
await import('tsx');
