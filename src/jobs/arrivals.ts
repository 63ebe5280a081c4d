/**
 * Arrival order through the task folder's look-up. Each accepted job's look-up (one asynchronous
 * stat, dispatch.ts) may answer after the next job's: what follows each look-up (queue the job,
 * or refuse it) runs in the order the jobs arrived, not in the order their look-ups answered.
 * A look-up that has not answered after `patienceMs` (a hung network file system, say) stops
 * holding the jobs behind it back: they go on, and it goes on whenever it answers.
 */
export class Arrivals {
  /** Arrivals whose turn has not come, oldest first; `next` is null until their look-up answered. */
  private readonly waiting: Array<{ next: (() => void) | null; overdue: boolean }> = [];

  constructor(
    private readonly patienceMs: number,
    /** Called once for a look-up that stopped holding the jobs behind it back. */
    private readonly onOverdue: (behind: number) => void = () => {},
  ) {}

  /** Arrivals whose look-up has not answered yet. */
  get pending(): number {
    return this.waiting.filter((a) => a.next === null).length;
  }

  /**
   * One arrival: `next` is what follows its look-up, or a promise of it (the look-up). It runs at
   * once when every earlier arrival has run (or is overdue), else when they have.
   */
  add(next: (() => void) | Promise<() => void>): void {
    if (typeof next === "function") {
      this.waiting.push({ next, overdue: false });
      this.flush();
      return;
    }
    const arrival: { next: (() => void) | null; overdue: boolean } = { next: null, overdue: false };
    this.waiting.push(arrival);
    const timer = setTimeout(() => {
      arrival.overdue = true;
      this.onOverdue(this.waiting.length - 1 - this.waiting.indexOf(arrival));
      this.flush();
    }, this.patienceMs);
    timer.unref();
    void next.then((then) => {
      clearTimeout(timer);
      arrival.next = then;
      this.flush();
    });
  }

  /** Runs, in order, every arrival whose look-up answered and that nothing before it holds back. */
  private flush(): void {
    let i = 0;
    while (i < this.waiting.length) {
      const a = this.waiting[i]!;
      if (a.next !== null) {
        this.waiting.splice(i, 1);
        a.next();
      } else if (a.overdue) i++;
      else return;
    }
  }
}
