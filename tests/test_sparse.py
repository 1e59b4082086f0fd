import pickle

import numpy as np
import pytest

from nudask.events import Coo, EventId
from nudask.sparse import index_dtype, segment_sum_coo, to_coo, to_dense


@pytest.mark.parametrize("shape", [(3456, 1067), (100, 80), (7, 9, 11)])
def test_round_trip_is_exact(shape):
    rng = np.random.default_rng(0)
    img = np.where(rng.random(shape) < 0.01, rng.normal(size=shape), 0).astype(np.float32)
    coo = to_coo(img)
    assert [i.dtype for i in coo.index] == [index_dtype(n) for n in shape]
    back = to_dense(coo)
    assert back.dtype == np.float32
    assert back.tobytes() == img.tobytes()


def test_to_dense_reuses_and_clears_the_buffer():
    a = to_coo(np.eye(4, dtype=np.float32))
    buf = np.full((4, 4), 7, np.float32)
    assert to_dense(a, out=buf) is buf
    np.testing.assert_array_equal(buf, np.eye(4))
    with pytest.raises(ValueError, match="buffer shape"):
        to_dense(a, out=np.zeros((3, 3), np.float32))


def test_segment_sum_sorts_and_sums():
    keys = np.array([7, 2, 7, 0, 2])
    coo = segment_sum_coo(keys, np.array([1, 2, 3, 4, 5], np.float32), (2, 4))
    assert [i.tolist() for i in coo.index] == [[0, 0, 1], [0, 2, 3]]
    assert coo.values.tolist() == [4, 7, 4]


def test_values_are_hashable_and_picklable():
    assert EventId(1, 2, 3) == pickle.loads(pickle.dumps(EventId(1, 2, 3)))
    assert len({EventId(1, 2, 3), EventId(1, 2, 3), EventId(1, 2, 4)}) == 2
    coo = to_coo(np.eye(3, dtype=np.float32))
    assert pickle.loads(pickle.dumps(coo)) == coo
    assert coo != Coo(coo.shape, coo.index, coo.values * 2)
