"""``executor: ray``: each cell a Ray task (``ablation.ray``: ``num_gpus``/``num_cpus``) on an existing cluster
(``address``) or a local one. Ray reuses worker processes, and each keeps its shared engine across cells. On a
multi-node cluster the run store must be on a filesystem every node sees."""

from __future__ import annotations


from sigx.ablation.launchers.base import Event, Launcher, Report, payload, register_launcher, run_cell_remotely
from sigx.ablation.plan import Cell
from sigx.ablation.store import StoreError
from sigx.config import RecipeError


@register_launcher
class RayLauncher(Launcher):
    name = "ray"

    def where(self) -> str:
        return f"Ray ({self.config.ray.address or 'local cluster'})"

    def launch(self, cells: list[Cell], report: Report) -> list[dict]:
        try:
            import ray
        except ImportError:
            raise StoreError("ablation.executor: 'ray' needs Ray; install it with: pip install 'sigx[ray]'") from None
        config = self.config.ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=config.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            gpus = config.gpus_per_cell
            if gpus is None:  # one per process of a cell's run (ablation.nproc_per_cell), where the cluster has GPUs
                gpus = self.config.nproc_per_cell if ray.cluster_resources().get("GPU", 0) > 0 else 0
            # max_calls=0: keep worker processes (and the shared engine each holds) alive across cells; Ray would
            # otherwise recycle a GPU task's worker after every call.
            task = ray.remote(max_calls=0)(run_cell_remotely).options(num_cpus=config.cpus_per_cell, num_gpus=gpus)
            threads = max(1, int(config.cpus_per_cell))
            refs = {task.remote(str(self.store.root.resolve()), payload(c), c.id, self.group, threads): c for c in cells}
            results = []
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
                for ref in ready:
                    cell = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RecipeError as err:  # Ray re-raises the task's RecipeError (wrapped): stop, as locally
                        raise RecipeError(getattr(err, "cause", err).problems) from None
                    except ray.exceptions.RayError as err:  # the worker died, or the node: the cell stays pending
                        report(Event("lost", cell.id, why=type(err).__name__))
                        continue
                    report(Event("finished", cell.id, result=result))
                    results.append(result)
            return results
        finally:
            if started_here:
                ray.shutdown()
