"""Training faces that stay off the training device, streamed one global batch at a time.

The default path copies the whole training set to the device once: for
FER-2013 that is 28,709 x 48 x 48 bytes (66 MB), and gathering a batch on the
device is free. A dataset of millions of faces, or one larger than memory,
stays where it is instead: in host memory, in a memory-mapped ``.npy`` file
(``python -m training data pack-npy``) or as image files (a large image
folder, decoded as needed), and DataLoader workers gather each global batch in
the background while the device trains on the previous one.

The batches are the same either way: the same seeded order, cut into the same
global batches (see ``training.engine.train_one_epoch``), so a streamed run
and an in-memory run with the same seed learn the same thing.
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

FACE = 48  # FER-2013's faces: 48x48 grayscale


def read_face_file(path: Path) -> np.ndarray:
    """One image file as a 48x48 uint8 grayscale face."""
    # Pillow comes with matplotlib; imported here so training needs it only for image folders.
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (FACE, FACE):
            im = im.resize((FACE, FACE), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


class StreamedFaces:
    """uint8 faces ``[N, 48, 48]`` read by row: from an array in memory, a memory-mapped ``.npy``
    file (``path``), or image files (``files``, decoded to 48x48 grayscale when read).

    ``rows`` selects (and orders) the rows of the source that belong to this set,
    so a training split is a view of it, never a copy.
    """

    def __init__(self, pixels: np.ndarray | None = None, path: str | Path | None = None,
                 rows: np.ndarray | None = None, workers: int = 2, files: list | None = None) -> None:
        if sum(x is not None for x in (pixels, path, files)) != 1:
            raise ValueError("give one source: the pixels, the path of a .npy file, or image files")
        self.path = Path(path) if path is not None else None
        self.files = list(files) if files is not None else None
        self._pixels = pixels
        count = len(self.files) if self.files is not None else len(self.pixels)
        self.rows = np.arange(count) if rows is None else np.asarray(rows, np.int64)
        self.workers = workers

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:  # opened lazily: in each DataLoader worker, not pickled to it
            self._pixels = np.load(self.path, mmap_mode="r")
        return self._pixels

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_pixels"] = None
        return state

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), FACE, FACE)

    def __getitem__(self, index) -> "StreamedFaces":
        """A subset (by a boolean mask, an index array or a slice), still streamed."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        source = ({"files": self.files} if self.files is not None else
                  {"path": self.path} if self.path is not None else {"pixels": self._pixels})
        return StreamedFaces(**source, rows=self.rows[index], workers=self.workers)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self.files is not None:
            return np.stack([read_face_file(self.files[i]) for i in rows]) if len(rows) else \
                np.zeros((0, FACE, FACE), np.uint8)
        return np.ascontiguousarray(self.pixels[rows])

    def gather(self, index) -> torch.Tensor:
        """The faces at positions ``index`` of this set, as a CPU tensor."""
        index = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, np.int64)
        return torch.from_numpy(self._read(self.rows[index]))

    def numpy(self) -> np.ndarray:
        return self._read(self.rows)

    def to(self, device) -> "StreamedFaces":
        return self  # streamed: batches move to the device one at a time

    def batches(self, order: torch.Tensor, batch_size: int, device: torch.device):
        """The global batches ``order[0:bs]``, ``order[bs:2bs]``, ... on ``device``, prefetched by workers."""
        count = len(order) // batch_size
        index = order[:count * batch_size].cpu().view(count, batch_size)
        # A generator of its own: the loader draws worker seeds from it, which would otherwise
        # advance the global RNG (dropout's) and make a streamed run differ from an in-memory one.
        loader = DataLoader(_Batches(self, index), batch_size=None, shuffle=False, num_workers=self.workers,
                            pin_memory=device.type == "cuda", prefetch_factor=4 if self.workers else None,
                            generator=torch.Generator().manual_seed(0))
        for batch in loader:
            yield batch.to(device, non_blocking=True)


class _Batches(Dataset):
    def __init__(self, faces: StreamedFaces, index: torch.Tensor) -> None:
        self.faces, self.index = faces, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.faces.gather(self.index[i])


def should_stream(faces, device: torch.device, choice: str = "auto") -> bool:
    """``on``/``off`` as asked; ``auto``: memory-mapped data or image files (a large image folder:
    ``training.data.STREAM_FILES_ABOVE``), or a training set over a fifth of the GPU's memory."""
    if choice != "auto":
        return choice == "on"
    if isinstance(faces, StreamedFaces):
        return faces.path is not None or faces.files is not None
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return faces.numel() * faces.element_size() > 0.2 * total
    return False  # on the CPU the data already is in the training device's memory
