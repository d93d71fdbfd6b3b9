// ESLint with typescript-eslint's type-checked rules, run by scripts/test.sh before the suite
// at zero warnings (`eslint --max-warnings 0`). The recommended type-checked set applies to
// all code; what is relaxed for tests, and why, is said below. The import boundaries of the
// layout (docs/architecture.md) are rules too: the reference coordinator and shared/ import
// nothing from agent/, shared/ nothing from coordinator/, the developer CLI (cli/) neither.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const fromAgent = { group: ['**/agent/*', '**/agent/**'], message: 'the agent is not a library: move what both sides need into shared/' };
const fromCoordinator = { group: ['../coordinator/*', '../../coordinator/*'], message: 'shared/ serves both sides; the reference coordinator is not a library' };

export default tseslint.config(
  // The benchmark drivers (scripts/bench/*.mjs) are plain JS over dist/ and not linted.
  { ignores: ['dist/', 'node_modules/', 'vendor/', '.tap/', 'coverage/', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // `_name` marks a parameter a signature needs but the body does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['coordinator/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromAgent] }] },
  },
  {
    // The developer CLI runs on a laptop: it speaks the API, it loads neither side.
    files: ['cli/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromAgent, { group: ['../coordinator/*'], message: 'the developer CLI speaks the API; it does not load the coordinator' }] }] },
  },
  {
    files: ['shared/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromAgent, fromCoordinator] }] },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // tap's t.test() returns a promise that tap itself awaits (subtests run in order).
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] }],
      // tap's subtest callbacks are async by convention, awaited or not.
      '@typescript-eslint/require-await': 'off',
      // Tests read parsed JSON, logs and HTTP bodies as untyped values and assert on them at
      // run time; fakes stand in for typed collaborators.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
