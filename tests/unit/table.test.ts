import { describe, it, expect } from 'vitest'
import { formatTable, shortId, age } from '../../cli/table.ts'

describe('tables', () => {
  it('aligns columns under upper-case headers', () => {
    expect(formatTable(['name', 'state'], [['p1', 'alive'], ['peer-22', 'dead']])).toBe('NAME      STATE\np1        alive\npeer-22   dead\n')
  })
  it('shortens long ids and formats ages', () => {
    expect(shortId('12D3KooWAbcdefghijklmnop')).toBe('12D3Ko…klmnop')
    expect(age('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:02:05Z'))).toBe('2m')
  })
})
