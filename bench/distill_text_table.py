"""The table of bench/distill_text.sh: rows "seed baseline_loss baseline_ppl online_loss online_ppl" on stdin;
appends the markdown to bench/results/distill_text.md, the raw record (one JSON line) to distill_text.jsonl, and
prints the markdown.

usage: distill_text_table.py STEPS TEACHER CORPUS_SUMMARY COMPARE_OUTPUT < rows"""
import json
import statistics as st
import subprocess
import sys
import time


def sd(x):
    return st.stdev(x) if len(x) > 1 else 0.0


def main():
    steps, teacher, corpus, compare = sys.argv[1:5]
    rows = [line.split() for line in sys.stdin if line.strip()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    seeds = " ".join(r[0] for r in rows)
    out = [f"## {time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit}", "",
           f"Command: `bench/distill_text.sh {steps} {seeds}`. Corpus (data/doc_corpus.py): "
           + "; ".join(corpus.strip().splitlines()) + f". Teacher: {teacher}. Students: {steps} steps each, "
           "the same text in the same order per seed. Held-out loss (nats per byte) and perplexity:", "",
           "| run.seed | baseline loss | baseline ppl | online loss | online ppl | online - baseline (loss) |",
           "|---|---|---|---|---|---|"]
    diff = []
    for seed, bl, bp, ol, op in rows:
        diff.append(float(ol) - float(bl))
        out.append(f"| {seed} | {float(bl):.4f} | {float(bp):.3f} | {float(ol):.4f} | {float(op):.3f} | "
                   f"{diff[-1]:+.4f} |")
    base = [float(r[1]) for r in rows]
    online = [float(r[3]) for r in rows]
    out.append(f"| mean (sd) | {st.mean(base):.4f} ({sd(base):.4f}) | | {st.mean(online):.4f} ({sd(online):.4f}) "
               f"| | {st.mean(diff):+.4f} ({sd(diff):.4f}) |")
    out += ["", "`retort eval --compare` on the held-out text (first seed):", "", "```", compare.strip(), "```", ""]
    with open("bench/results/distill_text.md", "a") as f:
        f.write("\n".join(out) + "\n")
    record = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": commit, "steps": int(steps),
              "teacher": teacher, "corpus": corpus.strip().splitlines(),
              "command": f"bench/distill_text.sh {steps} {seeds}",
              "rows": [{"seed": int(seed), "baseline_loss": float(bl), "baseline_ppl": float(bp),
                        "online_loss": float(ol), "online_ppl": float(op)} for seed, bl, bp, ol, op in rows],
              "compare": compare.strip()}
    with open("bench/results/distill_text.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
