/** SHA-256 helpers (lib/hash.ts) against FIPS 180-4 test vectors. */
import { sha256Hex, sha256Prefix } from './hash.js';

test('sha256Hex: FIPS 180-4 vectors, text as UTF-8, bytes as given', () => {
  expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  expect(sha256Hex('é')).toBe(sha256Hex(Buffer.from('é', 'utf8')));
});

test('sha256Prefix keeps the first digits; refuses a length outside 1..64', () => {
  expect(sha256Prefix('abc', 8)).toBe('ba7816bf');
  expect(sha256Prefix('abc', 64)).toBe(sha256Hex('abc'));
  expect(() => sha256Prefix('abc', 0)).toThrow(RangeError);
  expect(() => sha256Prefix('abc', 65)).toThrow(RangeError);
  expect(() => sha256Prefix('abc', 2.5)).toThrow(RangeError);
});
