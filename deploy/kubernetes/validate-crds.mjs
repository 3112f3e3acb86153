// Validate the custom resources of rendered manifests against their CRD schemas, rejecting
// unknown fields.
//
//   node deploy/kubernetes/validate-crds.mjs NODE_MODULES < documents.json
//
// Reads a JSON array of Kubernetes documents; prints a JSON array with one entry per custom
// resource ({kind, name, errors, unknown}) and exits 1 if any has a schema error or an unknown
// field, 2 on a kind it has no schema for. Built-in kinds are skipped (kubernetes-validate checks
// those). NODE_MODULES is where install-tools.sh put the schemas (.tools/node_modules):
//   @kubernetes-models/argo-rollouts 2.0.0        Argo Rollouts v1.9.0 API types
//   @kubernetes-models/prometheus-operator 6.0.0  Prometheus Operator v0.91.0 API types
//
// The models' validators accept fields they do not know. So each document is validated through
// a Proxy that records which keys the validator reads: a schema with properties reads every key
// it defines, and a map (labels, annotations) is iterated whole. A key nobody read is not in the
// schema: a typo such as `stepz`, or a field of another version, which the API server would
// drop (or, for structural CRDs with pruning, silently ignore).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const MODELS = {
  "argoproj.io/v1alpha1": {
    package: "@kubernetes-models/argo-rollouts",
    kinds: ["Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate"],
  },
  "monitoring.coreos.com/v1": {
    package: "@kubernetes-models/prometheus-operator",
    kinds: ["ServiceMonitor", "PodMonitor", "PrometheusRule"],
  },
  "monitoring.coreos.com/v1alpha1": {
    package: "@kubernetes-models/prometheus-operator",
    kinds: ["AlertmanagerConfig"],
  },
};
const BUILT_IN = /^(v1|(apps|batch|policy|autoscaling|networking\.k8s\.io|rbac\.authorization\.k8s\.io)\/v[0-9a-z]+)$/;

async function loadModel(nodeModules, apiVersion, kind) {
  const entry = MODELS[apiVersion];
  if (!entry || !entry.kinds.includes(kind)) return null;
  // The packages export only `import`; a file URL reaches them from outside their tree.
  const file = join(nodeModules, entry.package, apiVersion, `${kind}.js`);
  const module = await import(pathToFileURL(file).href);
  return module[kind];
}

// Wrap `value` so every key a validator reads is recorded under its JSON pointer in `seen`.
function track(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const entry = { read: new Set(), iterated: false, value };
  seen.set(path, entry);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      const found = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.hasOwn(target, key)) return found;
      entry.read.add(key);
      if (!children.has(key)) children.set(key, track(found, `${path}/${key}`, seen));
      return children.get(key);
    },
    ownKeys(target) {
      entry.iterated = true;
      return Reflect.ownKeys(target);
    },
  });
}

// Fields whose schema is free-form JSON although they hold a typed object: the nested routes of
// an AlertmanagerConfig (Go type []apiextensionsv1.JSON, so the Operator can recurse; it
// unmarshals each into a Route). Each is validated against the Route schema itself.
const NESTED = {
  AlertmanagerConfig: {
    schema: "ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1alpha1Route.js",
    roots: (document) => (document.spec?.route ? [["/spec/route", document.spec.route]] : []),
    children: (route) => route.routes ?? [],
    childPath: (path, index) => `${path}/routes/${index}`,
  },
};

async function checkNested(nodeModules, entry, nested, document, seen, errors) {
  const file = join(nodeModules, entry.package, "_schemas", nested.schema);
  const { validate } = await import(pathToFileURL(file).href);
  const { runValidateFunc } = await import(
    pathToFileURL(join(nodeModules, "@kubernetes-models/validate/dist/validate.js")).href
  );
  const pending = nested.roots(document);
  while (pending.length) {
    const [path, value] = pending.pop();
    nested.children(value).forEach((child, index) => {
      const childPath = nested.childPath(path, index);
      try {
        runValidateFunc(validate, track(child, childPath, seen));
      } catch (error) {
        errors.push(error.message.replaceAll("data/", `data${childPath}/`));
      }
      pending.push([childPath, child]);
    });
  }
}

async function check(nodeModules, entry, Model, document) {
  const seen = new Map();
  const errors = [];
  try {
    Model.prototype.validate.call(track(document, "", seen));
  } catch (error) {
    errors.push(error.message);
  }
  const nested = NESTED[document.kind];
  if (nested) await checkNested(nodeModules, entry, nested, document, seen, errors);
  const unknown = [];
  for (const [path, { read, iterated, value }] of seen) {
    if (iterated || Array.isArray(value)) continue;
    for (const key of Object.keys(value)) if (!read.has(key)) unknown.push(`${path}/${key}`);
  }
  return { errors, unknown };
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error("usage: node validate-crds.mjs NODE_MODULES < documents.json");
    process.exit(2);
  }
  const documents = JSON.parse(readFileSync(0, "utf8"));
  const results = [];
  let status = 0;
  for (const document of documents) {
    const { apiVersion, kind } = document;
    if (BUILT_IN.test(apiVersion)) continue;
    const name = document.metadata?.name;
    const Model = await loadModel(argv[0], apiVersion, kind);
    if (Model === null) {
      results.push({ kind, name, errors: [`no schema for ${apiVersion} ${kind}`], unknown: [] });
      status = 2;
      continue;
    }
    const result = { kind, name, ...(await check(argv[0], MODELS[apiVersion], Model, document)) };
    if ((result.errors.length || result.unknown.length) && status === 0) status = 1;
    results.push(result);
  }
  console.log(JSON.stringify(results, null, 2));
  process.exit(status);
}

await main(process.argv.slice(2));
