// The floors of src/, top to bottom. A module may import its own folder and
// any folder on a lower floor; never a higher floor, never a peer on its own
// floor. docs/design.md ("Where code lives") explains each folder.
const FLOORS = [
  ['cli'],
  ['cluster'],
  ['router', 'shard', 'indexer'],
  ['registry'],
  ['client'],
  ['wire'],
  ['engine', 'telemetry'],
  ['format', 'storage'],
];

const folderPattern = (folders) => `^src/(${folders.join('|')})/`;

const floorRules = FLOORS.flatMap((floor, level) => {
  const above = FLOORS.slice(0, level).flat();
  return floor.map((folder) => {
    const peers = floor.filter((other) => other !== folder);
    return {
      name: `floor-${folder}`,
      comment: `src/${folder} may import only its own folder and lower floors`,
      severity: 'error',
      from: { path: folderPattern([folder]) },
      to: { path: folderPattern([...above, ...peers]) },
    };
  }).filter((rule) => rule.to.path !== '^src/()/');
});

module.exports = {
  forbidden: [
    ...floorRules,
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-to-tests',
      comment: 'production code never imports test or load-test code',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|load-tests)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
