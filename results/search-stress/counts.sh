# Sourced by sittings.sh and make_reports.sh: the two counts they decide by, in one place.
# the runs archived in the archive $1 (one summary.json per finished run)
count() { find "$1" -mindepth 3 -maxdepth 3 -name summary.json 2>/dev/null | wc -l; }
# the runs the recipe at path $1 plans (cells x seeds), read from the recipe so a change of its seeds is seen
planned() {
  OMP_NUM_THREADS=1 .venv/bin/python -c "import sys; from sigx.config import load_recipe; from sigx.ablation.plan import expand
print(len(expand(load_recipe(sys.argv[1]))))" "$1"
}
