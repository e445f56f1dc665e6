"""The manual: it builds with warnings as errors, its tables are its records' figures, and
every command line it shows parses with its command's own flag parser."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'docs'))
sys.path.insert(0, str(REPO / 'docs' / '_ext'))

import command_lines  # noqa: E402
import eye2eye_docs  # noqa: E402
import render_tables  # noqa: E402


def test_the_manual_builds_with_warnings_as_errors(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html',
       '-d', str(tmp_path / 'doctrees'), str(REPO / 'docs'), str(tmp_path / 'html')],
      capture_output=True, text=True, cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  configs = (tmp_path / 'html' / 'configs.html').read_text()
  for field in ('sample.strength', 'train.grad_accum_steps', 'mesh.rules', 'distill.t_start'):
    assert f'>{field}<' in configs, field
  assert 'H.264 quality (lower is better, 0 lossless)' in configs
  api = (tmp_path / 'html' / 'api.html').read_text()
  for name in ('disparity_scale', 'StereoSampler', 'check_export_target', 'flops_per_device'):
    assert name in api, name


def test_config_field_meanings_come_from_the_comments_beside_them():
  source = '''
def base_config():
  c = ConfigDict()
  c.sample = ConfigDict()
  # Where the screen plane sits,
  # as a fraction of the width.
  c.sample.convergence = 0.0
  c.sample.crf = 18  # H.264 quality
  c.sample.seed = 0

  c.sample.eta = 0.0
'''
  found = eye2eye_docs.field_descriptions(source)
  assert found['sample.convergence'][1] == ('Where the screen plane sits, as a fraction of '
                                            'the width.')
  assert found['sample.crf'] == (8, 'H.264 quality')
  assert found['sample.seed'][1] == ''  # the block above belongs to the field above it
  assert found['sample.eta'][1] == ''


def test_every_config_field_is_described():
  from eye2eye_jax import config_base
  described = eye2eye_docs.field_descriptions(eye2eye_docs.CONFIG_BASE.read_text())
  fields = eye2eye_docs._leaves(config_base.base_config())
  assert [f for f in fields if not described.get(f, (0, ''))[1]] == []


def test_every_table_is_its_record_rendered():
  assert render_tables.differing() == []
  records = {p.stem for p in render_tables.RESULTS.glob('*.json')}
  used = render_tables.used_tables()
  assert used == set(render_tables.TABLES), 'a table is defined and never shown, or unknown'
  assert records == {r for name in used for r in render_tables.records_of(name)}, 'unused record'
  for name in records:
    measured = json.loads((render_tables.RESULTS / f'{name}.json').read_text())['measured']
    assert set(measured) == {'date', 'commit', 'machine', 'command'} and all(measured.values())


def test_a_table_edited_by_hand_is_found(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('<!-- table: steps -->\n<!-- end table -->\n')
  assert render_tables.differing([page]) == [f'{os.path.relpath(page, REPO)}: table steps']
  page.write_text(render_tables.rendered(page.read_text(), page))
  assert render_tables.differing([page]) == []
  record = json.loads((render_tables.RESULTS / 'demo_steps.json').read_text())
  psnr = f'{record["data"]["rows"][0]["psnr"]:.2f}'
  assert psnr in page.read_text()
  page.write_text(page.read_text().replace(psnr, '99.99', 1))
  assert len(render_tables.differing([page])) == 1


def test_a_record_keeps_the_command_s_json_with_its_provenance(tmp_path, monkeypatch):
  monkeypatch.setattr(render_tables, 'RESULTS', tmp_path / 'results')
  source = tmp_path / 'steps.json'
  shutil.copy(REPO / 'docs' / 'results' / 'demo_steps.json', tmp_path / 'old.json')
  source.write_text(json.dumps(json.loads((tmp_path / 'old.json').read_text())['data']))
  target = render_tables.record('demo_steps', source, 'make demo', commit='abc1234',
                                date='2026-01-02')
  kept = json.loads(target.read_text())
  assert kept['data'] == json.loads(source.read_text())
  assert kept['measured'] == {'date': '2026-01-02', 'commit': 'abc1234',
                              'machine': render_tables.machine(), 'command': 'make demo'}


def test_every_command_line_shown_parses():
  result = subprocess.run([sys.executable, str(REPO / 'docs' / 'command_lines.py')],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stdout[-4000:]
  shown = command_lines.command_lines()
  modules = {command.split()[2] for _, _, command in shown if ' -m ' in command}
  assert {'eye2eye_jax.train', 'eye2eye_jax.sample', 'eye2eye_jax.evaluate',
          'eye2eye_jax.plan'} <= modules


def test_a_command_line_with_a_wrong_flag_is_found(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('''```bash
python -m eye2eye_jax.sample --config=configs/demo.py --input=a.mp4 --output_dir=out \\
    --config.sample.strength=1.5
python -m eye2eye_jax.sample --config=configs/demo.py --config.sample.strenght=1.5
python -m eye2eye_jax.sample --config=configs/demo.py --input_file=a.mp4
python benchmarks/tpu_sampling_memory.py --topology=v5p-8 --tiles=256
```
''')
  result = subprocess.run([sys.executable, str(REPO / 'docs' / 'command_lines.py'), str(page)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
  assert result.returncode == 1
  problems = [line for line in result.stdout.splitlines() if 'page.md:' in line]
  assert [p.split(':')[1] for p in problems] == ['4', '5', '6'], result.stdout
  assert 'strenght' in problems[0] and 'input_file' in problems[1] and 'tiles' in problems[2]
  assert '1 of 4 command lines parse' in result.stdout


@pytest.mark.parametrize('page', ['training.md', 'strength.md', 'layout.md'])
def test_the_newcomer_s_questions_are_answered_where_the_index_points(page):
  index = (REPO / 'docs' / 'index.md').read_text()
  text = (REPO / 'docs' / page).read_text()
  assert f']({page}' in index
  wanted = {'training.md': ['run the same launch command again', 'resumes from the newest'],
            'strength.md': ['--input=VIDEOS/', '--config.sample.strength=1.5'],
            'layout.md': ['## Where things go', '**a new metric**']}[page]
  assert all(w in text for w in wanted)


def _slug(heading: str) -> str:
  """The anchor GitHub and MyST give a heading."""
  return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def _links_into_the_manual(path: pathlib.Path, text: str) -> list[tuple[pathlib.Path, str]]:
  links = re.findall(r'\]\(([^)#\s]*docs/[\w/]+\.md)(?:#([\w-]+))?\)', text)
  return [((path.parent / target).resolve(), anchor) for target, anchor in links]


def test_links_from_the_readme_notebook_and_reports_reach_manual_pages(tmp_path):
  notebook = REPO / 'notebooks' / 'eye2eye_demo.ipynb'
  cells = json.loads(notebook.read_text())['cells']
  from eye2eye_jax.evaluation import metrics_report
  report = tmp_path / 'outputs' / 'demo'
  sources = {REPO / 'README.md': (REPO / 'README.md').read_text(),
             notebook: '\n'.join(''.join(c['source']) for c in cells),
             report / 'report.md': metrics_report.manual_link(
                 report, 'evaluating.md#what-it-measured', 'Evaluating')}
  links = [link for path, text in sources.items() for link in _links_into_the_manual(path, text)]
  assert len(links) > 15
  for page, anchor in links:
    assert page.is_file(), page
    headings = re.findall(r'(?m)^#+ (.+)$', page.read_text())
    assert not anchor or anchor in {_slug(h) for h in headings}, (page.name, anchor)
