"""The launch scripts: they pass shellcheck and print the exact commands of a dry run."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = sorted((REPO / 'launch').glob('*.sh'))


def _shellcheck() -> str:
  found = shutil.which('shellcheck') or os.path.join(os.path.dirname(sys.executable),
                                                    'shellcheck')
  assert os.path.exists(found), 'shellcheck is installed with the test extras'
  return found


def test_scripts_pass_shellcheck():
  assert {p.name for p in SCRIPTS} >= {'tpu_train.sh', 'host_train.sh', 'slurm_train.sh',
                                       'train_local.sh'}
  result = subprocess.run([_shellcheck(), '-x', *map(str, SCRIPTS)], capture_output=True,
                          text=True, cwd=REPO)
  assert result.returncode == 0, result.stdout


def _dry_run(script, *args):
  return subprocess.run(['bash', str(REPO / 'launch' / script), *args], capture_output=True,
                        text=True, timeout=60)


def test_tpu_dry_run_prints_every_command_for_the_slice():
  result = _dry_run('tpu_train.sh', '--tpu=stereo-v5p-64', '--zone=us-east5-a',
                    '--project=my-project', '--dry_run', 'configs/base_paper.py',
                    'gs://my-bucket/base', '--config.train.num_steps=1000')
  assert result.returncode == 0, result.stderr
  commands = result.stdout.strip().splitlines()
  assert len(commands) == 4
  assert commands[0].startswith('git archive --format=tar.gz')
  where = '--zone=us-east5-a --worker=all --project=my-project'
  assert commands[1].startswith('gcloud compute tpus tpu-vm scp ') and where in commands[1]
  assert 'stereo-v5p-64:/tmp/eye2eye_jax.tar.gz' in commands[1]
  for command in commands[2:]:
    assert command.startswith('gcloud compute tpus tpu-vm ssh stereo-v5p-64 ' + where)
  train = commands[3]
  for part in ('launch/host_train.sh', '--accelerator=tpu', 'configs/base_paper.py',
               'gs://my-bucket/base', '--config.data.data_dir=gs://my-bucket/base/tfds',
               '--config.train.num_steps=1000'):
    assert part in train


@pytest.mark.parametrize('args, message', [
    (('--zone=z', 'configs/demo.py', 'gs://b/r'), 'usage'),
    (('--tpu=t', '--zone=z', 'configs/demo.py', '/local/dir'), 'must be gs:// paths'),
    (('--tpu=t', '--zone=z', '--data_dir=/local/tfds', 'configs/demo.py', 'gs://b/r'),
     "must be gs:// paths shared by all workers, got '/local/tfds'"),
])
def test_tpu_launcher_rejects_bad_arguments(args, message):
  result = _dry_run('tpu_train.sh', '--dry_run', *args)
  assert result.returncode == 2 and message in result.stderr


def test_slurm_dry_run_prints_its_commands():
  result = _dry_run('slurm_train.sh', '--dry_run', 'configs/base_paper.py', '/shared/run')
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == [
      'launch/host_train.sh --accelerator=gpu --setup_only ',
      'srun --kill-on-bad-exit=1 launch/host_train.sh --accelerator=gpu configs/base_paper.py '
      '/shared/run --config.data.data_dir=/shared/run/tfds ']
  result = _dry_run('slurm_train.sh', '--dry_run', '--data_dir=/shared/tfds',
                    'configs/base_paper.py', '/shared/run', '--config.train.num_steps=5')
  assert result.stdout.splitlines()[1].endswith(
      '--config.data.data_dir=/shared/tfds --config.train.num_steps=5 ')


def test_host_script_needs_config_and_workdir():
  result = _dry_run('host_train.sh', '--accelerator=tpu')
  assert result.returncode == 2 and 'usage' in result.stderr
