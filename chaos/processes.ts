// The production process layout, each service a separate OS process so that each can be killed
// or paused alone: started from dist/ with an environment of the chaos run's own, logs to files,
// and restarted by a small supervisor when it dies (as systemd or Kubernetes would), unless the
// run is shutting down.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import path from 'node:path';

export interface ServiceSpec {
  readonly name: string;
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
}

/** A supervisor waits this long before starting a process that died again. */
export const restartDelayMs = 300;

export class Service {
  private child: ChildProcess | undefined;
  private stopping = false;
  private pausedNow = false;
  restarts = 0;

  constructor(private readonly spec: ServiceSpec, private readonly logDirectory: string) {}

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    const log = openSync(path.join(this.logDirectory, `${this.spec.name}.log`), 'a');
    const child = spawn(process.execPath, [this.spec.script], { env: { ...process.env, ...this.spec.env }, stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    this.pausedNow = false;
    child.once('exit', () => {
      if (this.child !== child || this.stopping) return;
      this.restarts += 1;
      setTimeout(() => {
        if (!this.stopping && this.child === child) this.start();
      }, restartDelayMs);
    });
  }

  /** SIGKILL: the process dies mid-whatever; the supervisor starts it again. */
  kill(): void {
    if (this.pausedNow) this.resume();
    this.child?.kill('SIGKILL');
  }

  pause(): void {
    if (!this.running) return;
    this.child?.kill('SIGSTOP');
    this.pausedNow = true;
  }

  resume(): void {
    if (!this.pausedNow) return;
    this.child?.kill('SIGCONT');
    this.pausedNow = false;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.resume();
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
