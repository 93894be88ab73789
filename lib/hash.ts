/**
 * SHA-256 digests (FIPS 180-4) as lower-case hex text: the one helper behind every content
 * digest and hashed name suffix KEA writes (ConfigMap digests, `configVersion`, object-name
 * and label-value suffixes, snapshot reuse keys, token fingerprints).
 */
import { createHash } from 'node:crypto';

/**
 * Hex SHA-256 of a text (hashed as UTF-8) or of bytes: 64 lower-case hex digits.
 * @param data - the text or bytes to hash.
 */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The first `digits` hex digits of {@link sha256Hex}, for name and label suffixes that must be
 * short and stable (e.g. 8 for internal route names, 10 for owner label values).
 * @param data - the text or bytes to hash.
 * @param digits - how many hex digits to keep, 1 to 64.
 * @throws RangeError when `digits` is not an integer in 1..64.
 */
export function sha256Prefix(data: string | Uint8Array, digits: number): string {
  if (!Number.isInteger(digits) || digits < 1 || digits > 64) throw new RangeError(`sha256Prefix: digits must be 1..64, got ${digits}`);
  return sha256Hex(data).slice(0, digits);
}
