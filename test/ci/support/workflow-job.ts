/**
 * Runs one job of a workflow file with test/ci/support/action-runner.ts: the `workflow_call` inputs (defaults applied,
 * unknown or missing required ones refused, as GitHub does), the job's steps, then its `outputs` and the workflow's.
 */
import { readFile } from "node:fs/promises";

import { parse } from "yaml";

import {
  interpolate,
  runCompositeAction,
  runSteps,
  type RunnerOptions,
  type RunResult,
  type StepDefinition,
  type Strings,
  type Stub,
} from "./action-runner.js";
import { setupNodeStub, type cacheStub } from "./action-stubs.js";
import { SETUP_ACTION, type Job } from "./job.js";

interface WorkflowInput {
  type?: string;
  required?: boolean;
  default?: string | boolean | number;
}

export interface Workflow {
  on: { workflow_call?: { inputs?: Record<string, WorkflowInput>; outputs?: Record<string, { value: string }> } } & Record<string, unknown>;
  jobs: Record<
    string,
    { steps: StepDefinition[]; outputs?: Record<string, string>; permissions?: Record<string, string>; "runs-on"?: unknown }
  >;
}

export async function readWorkflow(path: string): Promise<Workflow> {
  return parse(await readFile(path, "utf8")) as Workflow;
}

export interface JobRun extends RunResult {
  inputs: Strings;
  jobOutputs: Strings;
  workflowOutputs: Strings;
}

export async function runWorkflowJob(
  workflow: Workflow,
  jobId: string,
  given: Record<string, unknown>,
  options: RunnerOptions,
): Promise<JobRun> {
  const declared = workflow.on.workflow_call?.inputs ?? {};
  const inputs: Strings = {};
  for (const name of Object.keys(given)) if (!(name in declared)) throw new Error(`input ${name} is not defined in the called workflow`);
  for (const [name, input] of Object.entries(declared)) {
    if (name in given) inputs[name] = String(given[name]);
    else if (input.required) throw new Error(`input ${name} is required`);
    else inputs[name] = input.default === undefined ? "" : String(input.default);
  }
  const job = workflow.jobs[jobId];
  if (!job) throw new Error(`no job ${jobId}`);
  const result = await runSteps(job.steps, inputs, options);
  const steps = Object.fromEntries(result.steps.filter((s) => s.id).map((s) => [s.id, { outputs: s.outputs, outcome: s.outcome }]));
  const jobOutputs: Strings = {};
  for (const [name, value] of Object.entries(job.outputs ?? {})) jobOutputs[name] = interpolate(value, { steps, inputs });
  const workflowOutputs: Strings = {};
  for (const [name, output] of Object.entries(workflow.on.workflow_call?.outputs ?? {})) {
    workflowOutputs[name] = interpolate(output.value, { jobs: { [jobId]: { outputs: jobOutputs } } });
  }
  return { ...result, inputs, jobOutputs, workflowOutputs };
}

/** The setup action as a nested `uses:` step of a job: the real composite action, run in the same job. */
export function setupActionStub(job: Job, cache: ReturnType<typeof cacheStub>, override: Strings = {}): Recorded {
  const calls: Strings[] = [];
  const stub: Stub = async ({ with: inputs, env }) => {
    calls.push(inputs);
    const run = await runCompositeAction(
      SETUP_ACTION,
      { ...inputs, ...override },
      {
        env,
        workspace: job.workspace,
        runnerTemp: job.runnerTemp,
        stubs: { "actions/setup-node": setupNodeStub().stub, "actions/cache": cache.stub },
      },
    );
    return { outputs: run.outputs, path: run.path, env: run.env, log: run.log, failed: run.ok ? undefined : "the setup action failed" };
  };
  return { stub, calls };
}

export interface Recorded {
  stub: Stub;
  calls: Strings[];
}
