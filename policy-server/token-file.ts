/**
 * Follows the internal token file (`--internal-token-file`, a key of the Secret
 * `kea-internal-token` mounted as a volume) so that a rotation needs no restart
 * (docs/adr/0009-internal-routes.md).
 *
 * The kubelet updates a Secret volume by swapping a symlink to a new directory, so the file is
 * re-read every `intervalMs` (a read of a few bytes) rather than watched with inotify, which
 * follows the old inode. A change of its content (surrounding white space ignored) is passed to
 * `onChange`; an empty or unreadable file keeps the current token (a half-written update or a
 * swap in progress) and is reported to `onError` once per distinct message.
 */
import { readFile } from 'node:fs/promises';
import { sha256Prefix } from '../lib/hash.js';

/** Options of {@link followTokenFile}. */
export interface TokenFileOptions {
  path: string;
  /** The token in use now (read at start). */
  current: string;
  /** Period of the re-read, ms (> 0). */
  intervalMs: number;
  /** Called with the new token when the file's content changes. */
  onChange: (token: string) => void;
  /** Called when the file cannot be read or is empty (once per distinct message). */
  onError?: (message: string) => void;
}

/** First 12 hex digits of the sha256 of a token: names it in logs without revealing it. */
export function tokenFingerprint(token: string): string {
  return sha256Prefix(token, 12);
}

/**
 * Starts following the file. The timer does not keep the process alive.
 * @returns a function that stops following.
 */
export function followTokenFile(opts: TokenFileOptions): () => void {
  let current = opts.current;
  let lastError = '';
  let busy = false;
  const tick = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const text = (await readFile(opts.path, 'utf8')).trim();
      if (!text) throw new Error(`${opts.path} is empty; keeping the current internal token`);
      lastError = '';
      if (text !== current) {
        current = text;
        opts.onChange(text);
      }
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastError) opts.onError?.(msg);
      lastError = msg;
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
