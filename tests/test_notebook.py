"""The Colab notebook runs top to bottom on CPU with tiny settings and shows its frames."""

import base64
import os

import nbclient
import nbformat
import numpy as np

from conftest import REPO
from eye2eye_jax import notebook_helpers
from eye2eye_jax.data import video_io

NOTEBOOK = REPO / 'notebooks' / 'eye2eye_demo.ipynb'


def _inject_parameters(notebook, values: dict) -> None:
  """Adds a cell after the one tagged 'parameters' that overrides its values (papermill's
  convention)."""
  index = next(i for i, cell in enumerate(notebook.cells)
               if 'parameters' in cell.metadata.get('tags', []))
  source = '\n'.join(f'{name} = {value!r}' for name, value in values.items())
  cell = nbformat.v4.new_code_cell(source, metadata={'tags': ['injected-parameters']})
  notebook.cells.insert(index + 1, cell)


def _outputs(notebook, mime: str) -> list[str]:
  return [output['data'][mime] for cell in notebook.cells if cell.cell_type == 'code'
          for output in cell.get('outputs', []) if mime in output.get('data', {})]


def test_committed_notebook_has_no_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None


def test_notebook_runs_and_shows_frames(tmp_path, monkeypatch):
  video = notebook_helpers.synthetic_clip(4, 32, seed=11).right
  video_path = video_io.write_video(tmp_path / 'upload.mp4', video, fps=8.0)
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  _inject_parameters(notebook, {
      'NUM_FRAMES': 4, 'FRAME_SIZE': 32, 'BASE_STEPS': 2, 'REFINER_STEPS': 2,
      'VIDEO_PATH': str(video_path), 'MAX_VIDEO_FRAMES': 4, 'MAX_VIDEO_SIDE': 32,
      'OUTPUT_DIR': str(tmp_path / 'stereo'), 'CONVERGENCE': 0.02})
  # The kernel inherits this environment: it imports the package from this checkout.
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
      [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': str(tmp_path)}})
  client.execute()  # raises CellExecutionError on any error
  nbformat.write(notebook, tmp_path / 'executed.ipynb')

  errors = [output for cell in notebook.cells if cell.cell_type == 'code'
            for output in cell.outputs if output['output_type'] == 'error']
  assert not errors
  html = ''.join(_outputs(notebook, 'text/html'))
  # Both conversions' frames (5 titled images each with the truth, 4 without) and videos.
  assert html.count('data:image/png;base64,') >= 9
  assert html.count('data:image/gif;base64,') >= 4
  for title in ('generated left', 'side-by-side (L | R)', 'anaglyph (red-cyan)'):
    assert html.count(title) >= 2
  plots = _outputs(notebook, 'image/png')
  # A disparity plot per conversion, the comfort report's plot and the strength curve.
  assert len(plots) == 4
  assert all(base64.b64decode(p)[:8] == b'\x89PNG\r\n\x1a\n' for p in plots)
  written = sorted(p.name for p in (tmp_path / 'stereo').iterdir())
  assert written == ['upload_LRF_Full_SBS.mp4', 'upload_LR_Half_SBS.mp4', 'upload_TB.mp4',
                     'upload_anaglyph.mp4', 'upload_left.mp4', 'upload_stereo.json',
                     'upload_stereo.png']
  sbs = video_io.read_video(tmp_path / 'stereo' / 'upload_LRF_Full_SBS.mp4').frames
  assert sbs.shape == (4, 32, 64, 3)
  # The right half of the side-by-side file is the input video.
  assert np.abs(sbs[:, :, 32:].astype(int) - video.astype(int)).mean() < 8
