// Key ordering and size helpers shared by validation, the store and the codecs.

/** UTF-8 length of a well-formed string, without allocating. */
export function utf8ByteLength(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

// JS compares strings by UTF-16 unit, which disagrees with UTF-8 byte order
// (etcd's order) only between surrogates (U+10000 and up) and U+E000..U+FFFF.
// Moving surrogates above that block makes unit order equal code point order,
// which equals UTF-8 byte order for well-formed strings.
function orderedUnit(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800
  if (unit >= 0xd800) return unit + 0x2000
  return unit
}

/** Orders keys by their UTF-8 bytes (etcd's key order); negative, 0 or positive. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return orderedUnit(x) - orderedUnit(y)
  }
  return a.length - b.length
}

/** Index of the first key in `sorted` that is >= `key`. */
export function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const probe = sorted[mid]
    if (probe !== undefined && compareKeys(probe, key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Orders byte strings lexicographically (how etcd compares values). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x - y
  }
  return a.length - b.length
}

/** Whether two byte strings are equal. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0
}
