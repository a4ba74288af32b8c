"""Per-workload report modules. Each has NAME and:

  summarize(records, results) -> dict   records: this workload's runs, reduced by
                                        results.reduce_runs; results: all of results.json
  plot(summary, plots_dir) -> [Path]    the files it wrote
  report(summary, plots) -> str         a markdown section; plots: 'plots/x.png' paths
  answers(summary) -> [str]             lines of the report's Answers (markdown.answer)
  stated(summary) -> [figure]           the figures scripts/compare sets side by side

Add a workload by writing its module and listing it in MODULES.
"""

from workloads import blocking_stall, cpu_hash, fan_out, producer_consumer

MODULES = {module.NAME: module for module in (cpu_hash, blocking_stall, fan_out, producer_consumer)}
