// Compiles chainwatch's Solidity sources with the solc npm package (`make contracts`).
//
//   contracts/src/<Name>.sol         test contracts  -> contracts/build/<Name>.json
//                                                        {"abi", "bytecode", "contractName"}
//                                                     and contracts/abi/<Name>.json (ABI alone)
//   contracts/interfaces/<Name>.sol  standard ABIs   -> contracts/abi/<Name>.json
//
// The output is deterministic (one pinned compiler, fixed settings, sorted keys, two-space
// indentation, final newline), so rebuilding an unchanged tree leaves git with nothing to commit.
// Run it from anywhere: paths are taken relative to this file.

import { readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const HERE = dirname(fileURLToPath(import.meta.url));
const EXPECTED_SOLC = "0.8.37";
// Cancun is the newest fork every chain chainwatch targets has; newer nodes (anvil defaults to
// the latest fork) run Cancun code unchanged.
const EVM_VERSION = "cancun";

function solidityFiles(folder) {
  return readdirSync(join(HERE, folder))
    .filter((name) => name.endsWith(".sol"))
    .sort()
    .map((name) => `${folder}/${name}`);
}

function compile(sourceUnits) {
  const input = {
    language: "Solidity",
    sources: Object.fromEntries(
      sourceUnits.map((unit) => [unit, { content: readFileSync(join(HERE, unit), "utf8") }]),
    ),
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: EVM_VERSION,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = output.errors ?? [];
  for (const problem of problems) {
    console.error(problem.formattedMessage.trimEnd());
  }
  if (problems.some((problem) => problem.severity === "error")) {
    process.exit(1);
  }
  return output.contracts;
}

// JSON with every object's keys sorted; arrays (ABI entries, parameters) keep solc's order.
function stableJson(value) {
  const sortKeys = (v) => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((key) => [key, sortKeys(v[key])]),
      );
    }
    return v;
  };
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function writeIfChanged(path, text) {
  let old = null;
  try {
    old = readFileSync(path, "utf8");
  } catch {
    // a new file
  }
  if (old !== text) {
    writeFileSync(path, text);
    console.log(`wrote ${path.slice(HERE.length - "contracts".length)}`);
  }
}

// The contract of a source unit is the one named like its file.
function* contractsOf(compiled, sourceUnits) {
  for (const unit of sourceUnits) {
    const name = unit.split("/").pop().replace(/\.sol$/, "");
    const contract = compiled[unit]?.[name];
    if (!contract) {
      console.error(`${unit}: no contract or interface named ${name}`);
      process.exit(1);
    }
    yield [name, contract];
  }
}

function main() {
  const version = solc.version();
  if (!version.startsWith(`${EXPECTED_SOLC}+`)) {
    console.error(`solc ${EXPECTED_SOLC} expected, found ${version}: run \`make install\``);
    process.exit(1);
  }
  mkdirSync(join(HERE, "build"), { recursive: true });
  mkdirSync(join(HERE, "abi"), { recursive: true });

  const sources = solidityFiles("src");
  for (const [name, contract] of contractsOf(compile(sources), sources)) {
    const artifact = { contractName: name, abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` };
    writeIfChanged(join(HERE, "build", `${name}.json`), stableJson(artifact));
    writeIfChanged(join(HERE, "abi", `${name}.json`), stableJson(contract.abi));
  }

  const interfaces = solidityFiles("interfaces");
  for (const [name, contract] of contractsOf(compile(interfaces), interfaces)) {
    writeIfChanged(join(HERE, "abi", `${name}.json`), stableJson(contract.abi));
  }
}

main();
