// Compile every tool's inputSchema and outputSchema with AJV in strict mode,
// as the MCP TypeScript SDK does, and fail on any error or warning (an
// unknown `format` is a warning there: "unknown format "uint64" ignored").
// Usage: node ajv_check.mjs <tools.json>   (a JSON array of MCP Tool objects)
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Ajv = require("ajv").default;
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const tools = JSON.parse(readFileSync(process.argv[2], "utf8"));
const problems = [];
let compiled = 0;
for (const tool of tools) {
  for (const which of ["inputSchema", "outputSchema"]) {
    const schema = tool[which];
    if (!schema) continue;
    const logger = {
      log() {},
      warn: (...args) => problems.push(`${tool.name} ${which}: warning: ${args.join(" ")}`),
      error: (...args) => problems.push(`${tool.name} ${which}: error: ${args.join(" ")}`),
    };
    const draft2020 = String(schema.$schema ?? "").includes("2020-12");
    const ajv = draft2020 ? new Ajv2020({ strict: true, logger }) : new Ajv({ strict: true, logger });
    addFormats(ajv);
    try {
      ajv.compile(schema);
      compiled += 1;
    } catch (e) {
      problems.push(`${tool.name} ${which}: ${e.message}`);
    }
  }
}
if (problems.length) {
  console.log(problems.join("\n"));
  process.exit(1);
}
console.log(`OK ${compiled} schemas`);
