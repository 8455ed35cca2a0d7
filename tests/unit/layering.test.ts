/**
 * Dependencies point down (DESIGN.md): cli -> node -> {protocols, runtime} -> storage, and
 * simulations/ runs the cores without node/. This reads every import of every source file and
 * fails on one that points the wrong way, type-only imports included: a type that two layers
 * share belongs in the lower one.
 */
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { REPO } from '../helpers/processes.ts'

function sources(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(REPO, dir))) {
    const path = `${dir}/${name}`
    if (statSync(join(REPO, path)).isDirectory()) out.push(...sources(path))
    else if (name.endsWith('.ts')) out.push(path)
  }
  return out
}

/** Repo-relative targets of a file's relative imports and re-exports (static and dynamic). */
export function importsOf(file: string, source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
  const specs = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1] as string)
  return specs.map((s) => relative(REPO, join(REPO, dirname(file), s)))
}

/** Which top-level folders each layer must not import from. */
const FORBIDDEN: Record<string, readonly string[]> = {
  storage: ['protocols', 'runtime', 'node', 'cli', 'simulations', 'bench'],
  protocols: ['runtime', 'node', 'cli', 'simulations', 'bench'],
  runtime: ['node', 'cli', 'simulations', 'bench'],
  simulations: ['node', 'cli', 'bench'],
  node: ['cli', 'simulations', 'bench'],
}

describe('layering', () => {
  it('reads imports the way the check needs (relative, multi-line, re-exports, dynamic)', () => {
    const src = "import {\n  a,\n  b,\n} from '../x/y.ts'\nexport * from './z.ts'\nconst m = await import('../../w.ts')\n// import '../commented.ts'\nimport 'node:fs'"
    expect(importsOf('protocols/dns/f.ts', src)).toEqual(['protocols/x/y.ts', 'protocols/dns/z.ts', 'w.ts'])
  })

  for (const [layer, banned] of Object.entries(FORBIDDEN)) {
    it(`${layer}/ imports nothing from ${banned.join(', ')}`, () => {
      const wrong: string[] = []
      for (const file of sources(layer)) {
        for (const target of importsOf(file, readFileSync(join(REPO, file), 'utf8'))) {
          const top = target.split('/')[0] as string
          if (banned.includes(top)) wrong.push(`${file} -> ${target}`)
        }
      }
      expect(wrong).toEqual([])
    })
  }
})
