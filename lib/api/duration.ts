/**
 * Gateway API Duration (GEP-2257), the format of ApiSchema `timeout` fields: one to four
 * `<1-5 digits><unit>` parts, unit `h`, `m`, `s` or `ms` (`1h`, `5s`, `500ms`, `1m30s`).
 */

/**
 * Parses a Gateway API Duration into ms.
 * @returns the duration in ms, or undefined when `d` is not a GEP-2257 Duration.
 */
export function parseDurationMs(d: string): number | undefined {
  if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(d)) return undefined;
  let ms = 0;
  for (const m of d.matchAll(/([0-9]{1,5})(h|ms|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms;
}
