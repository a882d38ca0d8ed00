"""``executor: ray``: each cell a Ray task (``ablation.ray``: ``num_gpus``/``num_cpus``) on an existing cluster
(``address``) or a local one. Ray reuses worker processes, and each keeps its shared engine across cells. On a
multi-node cluster the run store must be on a filesystem every node sees.

A cell across nodes (``ray.nodes_per_cell``) is a placement group of that many bundles on distinct nodes
(``STRICT_SPREAD``), each bundle one task that runs its node of ``sigx train --nnodes``: the task in bundle 0
claims the cell, names its staging directory and its own address in a note under the store's ``.ray/``, and
publishes the cell; the others read the note and join."""

from __future__ import annotations

import uuid
from pathlib import Path

from sigx.ablation.launchers.base import Event, Launcher, Report, payload, register_launcher, run_cell_remotely
from sigx.ablation.plan import Cell
from sigx.ablation.store import StoreError
from sigx.config import RecipeError
from sigx.nodes import Nodes, free_port


def node_of_cell(store_root: str, recipe_data: dict, cell_id: str, group: str, threads: int, count: int,
                 rank: int, told: str) -> dict | None:
    """Node ``rank`` of a cell across ``count`` nodes, run in bundle ``rank`` of the cell's placement group."""
    if rank == 0:
        import ray

        address = ray.util.get_node_ip_address()
        return run_cell_remotely(store_root, recipe_data, cell_id, group, threads,
                                 nodes=Nodes(count, 0, address, free_port(address)), tell_staging=Path(told))
    from sigx.ablation.cell import join_cell

    join_cell(recipe_data, cell_id, group, count, rank, Path(told))
    return None


def ray_address(configured: str | None) -> str | None:
    """What ``ray.init`` is given. Unset, Ray itself would join RAY_ADDRESS's cluster, else *the cluster last
    started on this machine* (its /tmp/ray/ray_current_cluster), whoever started it: an ablation would silently
    run on another user's (or another test's) cluster. So unset means RAY_ADDRESS where that is set (a Ray job),
    else a new local cluster, as documented; ``auto`` asks for Ray's own search."""
    if configured:
        return configured
    import os

    return None if os.environ.get("RAY_ADDRESS") else "local"


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
            ray.init(address=ray_address(config.address), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        try:
            gpus = config.gpus_per_cell
            if gpus is None:  # one per process of a cell's run (ablation.nproc_per_cell), where the cluster has GPUs
                gpus = self.config.nproc_per_cell if ray.cluster_resources().get("GPU", 0) > 0 else 0
            threads = max(1, int(config.cpus_per_cell))
            root = str(self.store.root.resolve())
            if config.nodes_per_cell > 1:
                leads = self._submit_across_nodes(ray, cells, root, gpus, threads)
            else:
                # max_calls=0: keep worker processes (and the shared engine each holds) alive across cells; Ray
                # would otherwise recycle a GPU task's worker after every call.
                task = ray.remote(max_calls=0)(run_cell_remotely).options(num_cpus=config.cpus_per_cell,
                                                                          num_gpus=gpus)
                leads = {task.remote(root, payload(c), c.id, self.group, threads): (c, None) for c in cells}
            return self._collect(ray, leads, report)
        finally:
            if started_here:
                ray.shutdown()

    def _submit_across_nodes(self, ray, cells: list[Cell], root: str, gpus: float, threads: int) -> dict:
        """Each cell's placement group and its tasks, one per node; {bundle 0's task: (cell, cleanup)}."""
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        config = self.config.ray
        count = config.nodes_per_cell
        alive = sum(1 for node in ray.nodes() if node.get("Alive"))
        if alive < count:
            raise StoreError(f"ablation.ray.nodes_per_cell: each cell asks for {count} nodes; the cluster has {alive}")
        bundle = {"CPU": config.cpus_per_cell, **({"GPU": gpus} if gpus else {})}
        task = ray.remote(max_calls=1)(node_of_cell)  # a worker per node of a cell: its processes are the run's
        notes = Path(root) / ".ray"
        leads = {}
        for cell in cells:
            group = placement_group([bundle] * count, strategy="STRICT_SPREAD")
            told = str(notes / f"{cell.id.replace('/', '--')}.{uuid.uuid4().hex[:8]}.staging.json")
            refs = [task.options(num_cpus=config.cpus_per_cell, num_gpus=gpus, scheduling_strategy=(
                        PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=rank))).remote(
                        root, payload(cell), cell.id, self.group, threads, count, rank, told)
                    for rank in range(count)]

            def cleanup(followers=refs[1:], group=group):
                # node 0's run is over (so is every node's, or it never started): what a node still waits on
                # (the note, when node 0 failed first) is cancelled with the group; the cell is node 0's result
                _, waiting = ray.wait(followers, num_returns=len(followers), timeout=30)
                for ref in waiting:
                    ray.cancel(ref, force=True)
                remove_placement_group(group)

            leads[refs[0]] = (cell, cleanup)
        return leads

    def _collect(self, ray, leads: dict, report: Report) -> list[dict]:
        results = []
        while leads:
            ready, _ = ray.wait(list(leads), num_returns=1, timeout=0.5)
            for ref in ready:
                cell, cleanup = leads.pop(ref)
                try:
                    result = ray.get(ref)
                except RecipeError as err:  # Ray re-raises the task's RecipeError (wrapped): stop, as locally
                    raise RecipeError(getattr(err, "cause", err).problems) from None
                except ray.exceptions.RayError as err:  # the worker died, or the node: the cell stays pending
                    report(Event("lost", cell.id, why=type(err).__name__))
                    continue
                finally:
                    if cleanup is not None:
                        cleanup()
                report(Event("finished", cell.id, result=result))
                results.append(result)
        return results
