"""A plan as aligned text tables, and readable byte, FLOP and time figures."""

from __future__ import annotations

import math

from eye2eye_jax.planning import data_estimate


def _bytes(n: float) -> str:
  for unit, scale in (('GiB', 2**30), ('MiB', 2**20), ('KiB', 2**10)):
    if n >= scale:
      return f'{n / scale:,.2f} {unit}'
  return f'{n:,.0f} B'


def _flop(n: float) -> str:
  for unit, scale in (('EFLOP', 1e18), ('PFLOP', 1e15), ('TFLOP', 1e12), ('GFLOP', 1e9)):
    if n >= scale:
      return f'{n / scale:,.2f} {unit}'
  return f'{n:,.0f} FLOP'


def duration(seconds: float) -> str:
  """A readable duration: ms, s, min, h or days."""
  for unit, scale in (('days', 86400), ('h', 3600), ('min', 60), ('s', 1)):
    if seconds >= scale:
      return f'{seconds / scale:,.2f} {unit}'
  return f'{seconds * 1e3:,.1f} ms'


def format_plan(p: dict) -> str:
  """The plan as aligned text tables."""
  t, m, tr = p['topology'], p['model'], p['training']
  mem, time, s, d = tr['memory'], tr['time'], p['sampling'], p['data']
  rows: list = []

  def section(title):
    rows.append(('', None))
    rows.append((title, None))

  def row(label, value):
    rows.append(('  ' + label, value))

  rows.append((f"{p['config']} on {t['name']}: {t['devices']} x {t['chip']}, "
               f"{t['hosts']} host(s)", None))
  section(f"Parameters: {m['parameters'] / 1e6:,.2f}M ({_bytes(m['parameter_bytes'])} float32), "
          f"compute {m['dtype']}, remat {m['remat']}")
  for name, count in m['per_module'].items():
    row(name, f'{count / 1e6:,.3f}M')
  mesh = ' x '.join(f'{k} {v}' for k, v in tr['mesh'].items())
  k = tr.get('grad_accum_steps', 1)
  micro = f" in {k} micro-batches of {tr['per_device_batch'] // k}" if k > 1 else ''
  section(f"Memory per device: mesh {mesh}, batch {tr['per_device_batch']} per device{micro}")
  labels = {'parameters': 'parameters', 'optimizer': 'optimizer state (AdamW)', 'ema': 'EMA',
            'gradients': 'gradients', 'activations': 'activations saved for backward',
            'recomputed_block': 'largest recomputed block (remat)', 'batch': 'input batch'}
  for key, label in labels.items():
    row(label, _bytes(mem[key]))
  verdict = 'fits' if mem['fits'] else f"DOES NOT FIT (largest term: {mem['overflow']})"
  row('total', f"{_bytes(mem['total'])} of {_bytes(mem['hbm'])} HBM: {verdict}")
  row('(XLA CPU temp of the step)', f"{_bytes(mem['xla_cpu_temp'])}: activations, gradients "
      'and workspace as this CPU schedules them (blind to remat)')
  section(f"Compute ({m['dtype']} peak {time['peak_flops'] / 1e12:,.1f} TFLOP/s per device, "
          f"mfu {time['mfu']})")
  row('train step, whole topology', _flop(tr['flops']['train_step_global']))
  row('train step, per device', _flop(tr['flops']['train_step_per_device']))
  row('compute per step', duration(time['compute_s']))
  row('collectives per step', f"{time['collective_bytes'] / 1e9:,.2f} GB per device, "
      f"{duration(time['collective_s'])} at {t['collective_bandwidth'] / 1e9:,.0f} GB/s")
  row('step time', duration(time['step_s']))
  row(f"{time['num_steps']:,} steps", f"{duration(time['total_s'])}, "
      f"{time['chip_hours']:,.0f} chip-hours")
  if p['alternatives']:
    section('Other settings (the same estimate re-run), fitting and fastest first')
    for alt in p['alternatives']:
      if 'error' in alt:
        row(alt['flags'], f"not possible: {alt['error']}")
      else:
        row(f"mesh {tuple(alt['mesh_shape'])}, remat {alt['remat']}",
            f"{_bytes(alt['total_bytes'])}: {'fits' if alt['fits'] else 'no'}, step "
            f"{duration(alt['step_s'])}, run {duration(alt['total_s'])}: {alt['flags']}")
    best = max((a for a in p['alternatives'] if a.get('max_per_device_batch') is not None),
               key=lambda a: a['max_per_device_batch'], default=None)
    if not any(a['fits'] for a in p['alternatives']) and best is not None:
      most, per_device = best['max_per_device_batch'], tr['per_device_batch']
      need = ('no device holds one clip' if most < 1 else
              f"the global batch needs >= {math.ceil(tr['batch_size'] / most)} devices")
      if 1 <= most < per_device:
        need += (f', or --config.train.grad_accum_steps={_accumulation(per_device, most)} '
                 'keeps it on these')
      row('none fits', f"{best['flags']} holds at most {most} clip(s) per device: {need} "
          '(activations scaled by the batch)')
  section(f"Sampling, {s['stage']} stage on one device: video {s['video'][0]}x{s['video'][1]}, "
          f"{s['video'][2]} frames")
  row('grid', f"{s['grid'][0]}x{s['grid'][1]}, {s['windows']} window(s) of "
      f"{s['window_frames']} frames, {s['steps']} steps, x{s['guidance_passes']} pass(es)")
  row('UNet forward per window', _flop(s['flops_per_window_forward']))
  row('per sampler step / per video', f"{_flop(s['flops_per_step'])} / "
      f"{_flop(s['flops_per_video'])}")
  row('time per video', duration(s['seconds_per_video']))
  row('memory', f"{_bytes(s['memory_bytes'])}: {'fits' if s['fits'] else 'DOES NOT FIT'}")
  for key, compiled in p.get('compiled', {}).items():
    training = key == 'train_step'
    where = (f"mesh {' x '.join(f'{k} {v}' for k, v in compiled['mesh'].items())}" if training
             else f"one chip, {compiled['windows']} window(s), {compiled['windows_per_call']} "
             'per UNet call')
    section(f"TPU compiler ({compiled['topology']}), {compiled['program']}: {where}; compiled "
            f"in {duration(compiled['compile_s'])}")
    estimate = mem['total'] if training else s['memory_bytes']
    if compiled['refused']:
      row('refused', f"its temporaries alone need {_bytes(compiled['temp_bytes'])} of the "
          f"{_bytes(compiled['hbm_bytes'])} HBM: DOES NOT FIT (the estimate above says "
          f"{_bytes(estimate)} in all)")
      continue
    row('arguments / outputs / temporaries', f"{_bytes(compiled['argument_bytes'])} / "
        f"{_bytes(compiled['output_bytes'])} / {_bytes(compiled['temp_bytes'])} per device "
        f"({_bytes(compiled['alias_bytes'])} of the outputs written into donated inputs)")
    spare = 'to spare' if compiled['fits'] else 'over'
    row('resident at once', f"{_bytes(compiled['total_bytes'])} of "
        f"{_bytes(compiled['hbm_bytes'])} HBM: {'fits' if compiled['fits'] else 'DOES NOT FIT'}"
        f", {_bytes(abs(compiled['headroom_bytes']))} {spare}; the estimate above says "
        f"{_bytes(estimate)} ({estimate / compiled['total_bytes']:.2f}x)")
    if training:
      row('FLOPs per device per step', f"{_flop(compiled['flops'])} (the estimate above: "
          f"{_flop(tr['flops']['train_step_per_device'])})")
  section(f"Data: {d['num_clips']:,} clips of {'x'.join(map(str, d['stored_view_shape']))} "
          'per eye')
  row('record (2 eyes)', f"{_bytes(d['raw_bytes_per_record'])} raw, "
      f"{_bytes(d['bytes_per_record'])} stored (compression ratio "
      f"{d['compression_ratio']:.2f}, {d['compression_ratio_source']})")
  row('dataset', f"{d['dataset_bytes'] / 1e12:,.3f} TB; {d['epochs']:,.1f} epochs")
  row('input per host', f"{d['records_per_step_per_host']:g} records per step, "
      f"{d['input_bytes_per_s_per_host'] / 1e6:,.1f} MB/s")
  if 'build_s' in d:
    row('Stereo4D build', f"{duration(d['build_s'])} on {d['builder_cores']} cores "
        f"({d['build_core_hours']:,.0f} core-hours at {d['builder_ms_per_frame']:g} ms per "
        f"stored frame on {data_estimate.BUILDER_MEASURED_CORES} cores, from "
        f"{data_estimate.BUILDER_MEASURED_SOURCE} sources)")
  width = max(len(label) for label, value in rows if value is not None)
  return '\n'.join(label if value is None else f'{label:<{width}}  {value}'
                   for label, value in rows)


def _accumulation(per_device: int, most: int) -> int:
  """The fewest micro-batches that split ``per_device`` clips evenly into shares of at most
  ``most``."""
  return next(k for k in range(1, per_device + 1) if per_device % k == 0
              and per_device // k <= most)


def summary_table(plans: list[dict]) -> str:
  """Plans side by side (a column each): what a config needs per device, how long it takes
  and what it reads, by the estimate and, where compiled, by the TPU compiler."""
  def fits(ok: bool) -> str:
    return 'fits' if ok else 'does not fit'

  def compiled_memory(p: dict) -> str:
    c = p.get('compiled', {}).get('train_step')
    if c is None:
      return '–'
    if c['refused']:
      return f"refused: temporaries {_bytes(c['temp_bytes'])}"
    return (f"**{_bytes(c['total_bytes'])}: {fits(c['fits'])}** ({_bytes(c['argument_bytes'])}"
            f" arguments, {_bytes(c['temp_bytes'])} temporaries)")

  def step_flops(p: dict) -> str:
    estimate = p['training']['flops']['train_step_per_device'] / 1e12
    c = p.get('compiled', {}).get('train_step')
    by_compiler = f" / {c['flops'] / 1e12:,.1f}" if c and c.get('flops') else ''
    return f'{estimate:,.1f}{by_compiler} TFLOP'

  def build(d: dict) -> str:
    return (f"{duration(d['build_s'])} on {d['builder_cores']} cores "
            f"({d['build_core_hours']:,.0f} core-hours)") if 'build_s' in d else '–'

  rows = {
      'devices': lambda p: f"{p['topology']['devices']} x {p['topology']['chip']}",
      'batch per device': lambda p: (
          f"{p['training']['per_device_batch']}" +
          (f" in {p['training']['grad_accum_steps']} micro-batches"
           if p['training'].get('grad_accum_steps', 1) > 1 else '')),
      'memory per device: estimate': lambda p: (
          f"{_bytes(p['training']['memory']['total'])} of "
          f"{_bytes(p['training']['memory']['hbm'])}: {fits(p['training']['memory']['fits'])}"),
      'the same, by the TPU compiler': compiled_memory,
      'train step per device: estimate / TPU compiler': step_flops,
      'steps at the planned MFU': lambda p: (
          f"{p['training']['time']['num_steps']:,} at {p['training']['time']['mfu']:g}: "
          f"{duration(p['training']['time']['total_s'])}, "
          f"{p['training']['time']['chip_hours']:,.0f} chip-hours"),
      'input per host': lambda p: f"{p['data']['input_bytes_per_s_per_host'] / 1e9:,.1f} GB/s",
      'dataset': lambda p: (f"{p['data']['dataset_bytes'] / 1e12:,.1f} TB (compression "
                            f"{p['data']['compression_ratio']:.2f})"),
      'Stereo4D build': lambda p: build(p['data']),
      'sampling one video on one chip': lambda p: (
          f"{p['sampling']['stage']} {'x'.join(map(str, p['sampling']['video']))}: "
          f"{duration(p['sampling']['seconds_per_video'])}, "
          f"{_bytes(p['sampling']['memory_bytes'])}"),
  }
  lines = ['| | ' + ' | '.join(f"{p['topology']['name']}, `{p['config']}`" for p in plans) +
           ' |', '|---' * (len(plans) + 1) + '|']
  lines += [f'| {label} | ' + ' | '.join(read(p) for p in plans) + ' |'
            for label, read in rows.items()]
  return '\n'.join(lines)
