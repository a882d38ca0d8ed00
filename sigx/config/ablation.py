"""The ``ablation`` section: the factors (techniques, or recipe fields at two levels), the design's fraction
and seeds, the declared metric and margin, and where cells run (local workers, Ray, Slurm)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from sigx.config.base import Names, Strict, quoted, role
from sigx.config.techniques import technique_order
from sigx.design import make_design


def _known_technique(name: str) -> str:
    if name not in technique_order():
        shown = quoted(name, 40)
        raise ValueError(f"unknown technique {shown}; a factor is a technique ({', '.join(technique_order())}) or a "
                         "recipe field at two levels, e.g. {rollout.staleness: [0, 4]}")
    return name


TechniqueName = Annotated[str, AfterValidator(_known_technique)]


class FieldFactor(Strict):
    """A recipe field as a factor of the ablation, at two levels: the reference (coded -1, like a technique off)
    and the treatment (+1). Written ``{rollout.staleness: [0, 4]}`` or in full, with a role."""

    field: str = Field(description="dotted path of the recipe field, e.g. rollout.staleness or training.lr")
    levels: tuple[Any, Any] = Field(description="[reference, treatment]: the reference is the baseline cell's")
    role: Literal["regime", "control"] = Field(
        "regime", description="regime: crossed with every other factor, a condition the techniques are measured "
        "under (technique gaps are reported at each of its levels); control: a factor whose effect is known to be "
        "real, crossed with the baseline only (one extra cell per seed: every other factor at its reference), a "
        "positive control that shows the set-up detects an effect of its size")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) == 1 and "field" not in data:
            ((path, levels),) = data.items()
            return {"field": path, "levels": levels}
        return data

    @model_validator(mode="after")
    def _two_levels(self) -> "FieldFactor":
        if self.levels[0] == self.levels[1]:
            raise ValueError(f"{self.field}: the two levels must differ (got {list(self.levels)})")
        return self


#: characters a level may not carry into a cell's directory name: path separators, NUL and control characters,
#: and the escape character itself, each written %XX instead (so ``http://a/v1`` names one directory, never three)
_UNSAFE_IN_NAME = re.compile(r"[%/\\\x00-\x1f\x7f]")
#: the longest a level's label, and a cell's whole combination name, may be (one path component: 255 bytes)
MAX_LABEL = 100
MAX_COMBINATION = 240


def level_label(value: Any) -> str:
    """How a field factor's treatment level appears in a cell's name (``staleness=4``, ``lr=0.0001``): one path
    component whatever the value, so that no level can place a cell outside its store."""
    text = format(value, "g") if isinstance(value, float) else str(value).lower() if isinstance(value, bool) \
        else str(value)
    return _UNSAFE_IN_NAME.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def _factor_kind(value: Any) -> str:
    return "technique" if isinstance(value, str) else "field"


Factor = Annotated[Union[Annotated[TechniqueName, Tag("technique")], Annotated[FieldFactor, Tag("field")]],
                   Discriminator(_factor_kind)]


#: where an ablation's cells may run (``ablation.executor``): the built-in launchers' names, and those added by
#: ``register_launcher`` in sigx.ablation.launchers (through register_executor)
EXECUTORS = Names("executor", ["local", "ray", "slurm"])
ExecutorName = EXECUTORS.field


def register_executor(name: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise ValueError(f"launcher name {name!r}: lowercase letters, digits and _, starting with a letter")
    EXECUTORS.register(name)


def _ray_address(value: str) -> str:
    """The forms ``ray.init`` connects to: auto, local, HOST:PORT (a cluster's GCS) or ray://HOST[:PORT] (Ray
    Client), HOST a name, IPv4 or [IPv6]: checked when the recipe is read, not when the first cell is submitted."""
    if value in ("auto", "local"):
        return value
    client = value.startswith("ray://")
    parts = urlsplit(value if client else f"//{value}")
    try:
        port = parts.port
    except ValueError:  # not a number, or beyond 65535
        port = 0
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username or port == 0 \
            or (port is None and not client):
        shown = quoted(value, 60)
        raise ValueError(f"{shown} is not a Ray address; allowed: auto, local, HOST:PORT, ray://HOST[:PORT]")
    return value


class RayConfig(Strict):
    """``executor: ray``: each cell a Ray task."""

    address: Annotated[str, AfterValidator(_ray_address)] | None = Field(
        None, description="address of an existing cluster (default: RAY_ADDRESS's where set, else start a local one; "
        "'auto': the cluster last started on this machine)")
    gpus_per_cell: float | None = Field(None, ge=0, description="num_gpus of a cell's task (default: 1 if the "
                                        "cluster has GPUs, else 0)")
    cpus_per_cell: float = Field(1.0, gt=0, description="num_cpus of a cell's task (and its torch threads)")
    nodes_per_cell: int = Field(1, ge=1, le=1024, description="nodes of each cell's run: a placement group of that "
                                "many bundles on distinct nodes (STRICT_SPREAD), each a node of `sigx train --nnodes` "
                                "with nproc_per_cell processes; the store must be on a filesystem the nodes share")


class SlurmConfig(Strict):
    """``executor: slurm``: each cell a Slurm job (one job array per invocation), submitted through submitit."""

    partition: str | None = Field(None, description="Slurm partition (default: the cluster's)")
    account: str | None = Field(None, description="Slurm account to charge")
    time_min: int = Field(240, ge=1, description="a job's time limit, minutes (a cell cut by it resumes from its "
                          "checkpoint when run again)")
    gpus_per_cell: int = Field(1, ge=0, description="GPUs per job")
    cpus_per_cell: int = Field(8, ge=1, description="CPUs per job (and its torch threads)")
    mem_gb: float | None = Field(None, gt=0, description="memory per job, GB (default: the partition's)")
    max_parallel: int = Field(64, ge=1, description="jobs of the array running at once")
    nodes_per_cell: int = Field(1, ge=1, le=1024, description="nodes of each cell's job, one task per node: the "
                                "cell's run on nodes_per_cell x nproc_per_cell processes (sigx train --nnodes); the "
                                "store must be on a filesystem the nodes share. local: that many tasks on this machine")
    sbatch: dict[str, str] = Field(default_factory=dict, description="more sbatch options, e.g. {constraint: a100}")
    local: bool = Field(False, description="run the jobs as local processes (submitit's LocalExecutor): for tests "
                        "and for trying a recipe without a cluster")


class AblationConfig(Strict):
    """What ``sigx ablate`` runs: the 2^k factorial (or a fraction of it) over ``factors`` x ``seeds``, and where
    and how.

    A factor is a technique (off / on) or a recipe field at two levels (``{rollout.staleness: [0, 4]}``), so
    technique x regime interactions are measurable. Techniques that are not factors keep the setting of the
    ``techniques`` section in every cell. ``factors`` and the rest of the recipe decide *what* is measured and
    must not change once a run store holds cells; ``seeds`` may grow, and ``fraction`` may change (lowered, the
    cells it left out run and the cells done are kept: a fold-over); ``executor``, ``workers``,
    ``ray`` and ``slurm`` decide only *where*, and may change between a crash
    and its resume.
    """

    factors: list[Factor] = Field(default_factory=lambda: ["search_p1", "gcrl", "sspo", "sorl"], min_length=1,
                                  description="techniques (by name) and/or recipe fields at two levels")
    fraction: int = Field(0, ge=0, description="p of a 2^(k-p) fractional design of resolution >= V (main effects "
                          "and 2-factor interactions unaliased) over the k crossed factors (controls are not "
                          "crossed); 0: the full factorial. Lowering it on a store runs only the cells "
                          "missing (a fold-over that de-aliases the interactions)", **role("execution"))
    seeds: list[Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]] = Field(  # strict: `true` is no seed
        default_factory=lambda: [0, 1, 2], min_length=1, description="the seeds every cell runs with (seed is a "
        "block in the analysis); more may be added to a store later", **role("execution"))
    metric: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="the metric the "
                               "analysis is declared on, before any run (a number a run's summary holds: final_reward, "
                               "reward_auc, ..., or one a technique on in some cell declares; `sigx ablate` and "
                               "`sigx validate` refuse any other): `sigx report` uses it, and says so in its first "
                               "line when asked for another. Unset: final_reward, reported as not declared")
    margin: float | None = Field(None, gt=0, le=1, description="the additivity / equivalence margin declared with "
                                 "the metric: a gap (or effect) shown within +-margin is negligible. Unset: 0.02, "
                                 "reported as not declared")
    output_dir: str = Field("ablations", min_length=1, max_length=4096,
                            description="run store root; the ablation goes to <output_dir>/<name>",
                            **role("execution"))
    executor: ExecutorName = Field(
        "local", description="where cells run: local (this process, or `workers` processes), ray (a Ray "
        "cluster, see ray), slurm (Slurm jobs through submitit, see slurm)", **role("execution"))
    workers: int = Field(1, ge=1, description="local: cells run in parallel, one process (and one GPU, if any) "
                         "each", **role("execution"))
    nproc_per_cell: int = Field(1, ge=1, le=1024, description="processes of each cell's run (sigx train --nproc: "
                                "the update sharded with FSDP2, one GPU each); Ray and Slurm give a cell as many "
                                "GPUs", **role("layout"))
    ray: RayConfig = Field(RayConfig(), description="executor ray: the cluster and each task's resources",
                           **role("execution"))
    slurm: SlurmConfig = Field(SlurmConfig(), description="executor slurm: each cell's job", **role("execution"))

    @model_validator(mode="after")
    def _consistent(self) -> "AblationConfig":
        keys = [f if isinstance(f, str) else f.field for f in self.factors]
        for name, values in (("factors", keys), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} must not repeat a value (got {values})")
        crossed = [f for f in self.factors if isinstance(f, str) or f.role != "control"]
        if not crossed:
            raise ValueError("factors: a positive control needs at least one other factor to be compared with")
        make_design(len(crossed), self.fraction)  # DesignError (a ValueError) names the allowed fractions
        return self
