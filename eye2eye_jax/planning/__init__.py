"""Plans a run before paying for it: memory, FLOPs and time of a config on a topology.

Nothing is allocated. The train state is ``jax.eval_shape``d; its per-device bytes come from
``eye2eye_jax.common.sharding``'s rules on an ``AbstractMesh`` of the topology's device count. The
real jitted programs (``train_state.make_train_step`` and the UNet forward of
``unet.make_denoiser``) are compiled for this CPU from ShapeDtypeStructs, and XLA's cost
analysis gives their FLOPs (2 per multiply-add):

* *global*: the train step at the global batch, what the whole topology computes per step;
* *per device*: the same step at the per-device batch (global batch / the mesh's batch ways),
  the optimizer update counted in full (an upper bound where the state is sharded; it is
  well under 1% of the step). A mesh's tensor axis does not shrink it: activations follow the
  batch layout, so each tensor device computes its per-device batch.

Bytes per device: parameters, optimizer state and EMA are their shards' bytes; gradients are
counted like the parameter shards (they are reduced into that layout); weights gathered layer
by layer under FSDP are transient and not counted. Activations are an estimate, not this CPU's
memory analysis: this CPU compiler's buffer assignment does not show remat's savings (its temp bytes
stay the same with ``model.remat``: measured 1.02 GB with and without remat for the paper
model on 16x32x32 clips). Instead they are the residuals JAX's autodiff keeps between the
forward and the backward pass of the real loss at the per-device batch under the remat
policy, plus, with remat, those of the largest recomputed block (``activation_bytes``),
less the normalisation and activation intermediates, which XLA fuses into the convolutions
and recomputes (counting them made the estimate 4.4x the TPU compiler's bytes for the paper
train step). The CPU's temp bytes are reported beside it; with libtpu, ``plan --compile``
replaces the estimate with the TPU compiler's own figures.

Time per step = per-device FLOPs / (peak FLOP/s of ``model.dtype`` x ``mfu``), the FLOPs being
those the compiled step executes (rematerialised ones included). Collectives (ring
all-gather / reduce-scatter / all-reduce of float32 parameters and gradients at the
topology's slowest link) are estimated beside it and assumed to overlap the compute.

Modules: ``compiled_programs`` (abstract states, the compiled programs' FLOPs and memory,
activation residuals), ``training_estimate`` (memory, time and collectives per device, and
settings that would fit), ``sampling_estimate``, ``data_estimate`` (dataset size, input
bandwidth, build time), ``planner`` (the whole plan) and ``report`` (the plan as text);
``accelerators`` holds the chips and topologies.
"""
