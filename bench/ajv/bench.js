// The baseline of bench/schema.sh: the loops of bench/bench_schema.c with ajv
// (draft 2020-12, ajv-formats, so "format" asserts), the same schema and documents,
// each schema compiled once. Prints machine-readable lines:
//
//   ajv_valid_ok=1                      the valid document validates
//   ajv_invalid_ok=0                    the invalid one does not
//   ajv_invalid_errors=<n>              errors it has (allErrors: true)
//   ajv_valid=<validations/s>           the valid document, allErrors: false
//   ajv_invalid_all_errors=<validations/s>  the invalid one, allErrors: true
//
//   node bench.js [--prefix DIR] [--seconds S] [--check] [DATA]
//     --prefix   where `npm ci` installed package.json's packages (DIR/node_modules;
//                or $BENCH_NODE_PREFIX; default this script's directory)
//     --seconds  time of each figure (default 1)
//     --check    the validity lines only, no timing
//     DATA       holds order.schema.json, order-valid.json, order-invalid.json
//                (default ../schema from this script)
//
// Each figure is the number of validations done in one timed loop of at least S
// seconds, after a warm-up that also lets V8 optimise, divided by the loop's wall
// time. Exits 1 when the valid document is invalid or the invalid one valid.
// SPDX-License-Identifier: MIT
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function usage() {
    process.stderr.write('usage: node bench.js [--prefix DIR] [--seconds S] [--check] [DATA]\n');
    process.exit(2);
}

let prefix = process.env.BENCH_NODE_PREFIX || __dirname;
let data = path.join(__dirname, '..', 'schema');
let seconds = 1;
let checkOnly = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--prefix' && i + 1 < args.length) prefix = args[++i];
    else if (args[i] === '--seconds' && i + 1 < args.length) {
        seconds = Number(args[++i]);
        if (!(seconds > 0)) usage();
    } else if (args[i] === '--check') checkOnly = true;
    else if (args[i].startsWith('-')) usage();
    else data = args[i];
}

// Resolve the packages from the install directory, not from this script's.
const req = createRequire(path.join(path.resolve(prefix), 'package.json'));
const Ajv2020 = req('ajv/dist/2020').default;
const addFormats = req('ajv-formats').default;

const load = (name) => JSON.parse(fs.readFileSync(path.join(data, name), 'utf8'));
const schema = load('order.schema.json');
const valid = load('order-valid.json');
const invalid = load('order-invalid.json');

function compile(allErrors) {
    const ajv = new Ajv2020({ allErrors });
    addFormats(ajv);
    return ajv.compile(schema);
}
const firstError = compile(false);
const allErrors = compile(true);

const now = () => Number(process.hrtime.bigint()) / 1e9;

// Validations per second over at least `seconds`; every result must be `want`.
function measure(validate, doc, want) {
    let batch = 1;
    for (;;) { // warm-up, and a batch size that reads the clock about every millisecond
        const t0 = now();
        for (let i = 0; i < batch; i++)
            if (validate(doc) !== want) wrong(want);
        const dt = now() - t0;
        if (dt >= 0.05 && batch >= 1000) { // >= 1000 calls: past V8's first tiers
            batch = Math.max(1, Math.floor(batch * 0.001 / dt));
            break;
        }
        batch *= 2;
    }
    let n = 0;
    const t0 = now();
    let dt;
    do {
        for (let i = 0; i < batch; i++)
            if (validate(doc) !== want) wrong(want);
        n += batch;
        dt = now() - t0;
    } while (dt < seconds);
    return n / dt;
}

function wrong(want) {
    process.stderr.write(`ajv bench: a validation gave ${!want} instead of ${want}\n`);
    process.exit(1);
}

const out = (line) => process.stdout.write(line + '\n');
let ok = true;
const v = allErrors(valid);
out(`ajv_valid_ok=${v ? 1 : 0}`);
if (!v) {
    process.stderr.write('ajv bench: order-valid.json is invalid:\n' +
        JSON.stringify(allErrors.errors, null, 2) + '\n');
    ok = false;
}
const iv = allErrors(invalid);
out(`ajv_invalid_ok=${iv ? 1 : 0}`);
out(`ajv_invalid_errors=${iv ? 0 : allErrors.errors.length}`);
if (iv) {
    process.stderr.write('ajv bench: order-invalid.json is not invalid\n');
    ok = false;
} else if (checkOnly && process.env.BENCH_VERBOSE) {
    for (const e of allErrors.errors)
        process.stderr.write(`  ${e.instancePath}: ${e.message} (${e.schemaPath})\n`);
}
if (firstError(invalid)) {
    process.stderr.write('ajv bench: order-invalid.json is valid with allErrors: false\n');
    ok = false;
}
if (!ok) process.exit(1);

if (!checkOnly) {
    out(`ajv_valid=${measure(firstError, valid, true).toFixed(0)}`);
    out(`ajv_invalid_all_errors=${measure(allErrors, invalid, false).toFixed(0)}`);
}
