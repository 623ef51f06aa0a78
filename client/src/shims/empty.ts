/**
 * Stands in for Node-only fallbacks that fhirclient `require`s but never calls in a browser with `fetch` and
 * WebCrypto (`cross-fetch`, `isomorphic-webcrypto`): keeps them out of the bundle (client/build.ts `alias`).
 */
export default undefined;
