"""Global per-level CTA width triples on the default evaluation texts: mean embedding cosine (5 LSH seeds) and RA."""
import json
import sys
import time

import numpy as np

from golden.accuracy import cached_trace
from golden.calibrate import _LayerClusters, _LSHCache, embed_cta, single_thread_blas
from golden.corpus import corpus
from golden.cta import cta_work
from golden.minilm import MiniLM

model = MiniLM.load()
texts = corpus()
exact = np.stack([cached_trace(model, t).embedding for t in texts])
triples = [tuple(map(float, s.split(","))) for s in sys.argv[1:]]
cache = _LSHCache(384, 6)
out = []
with single_thread_blas():
    for tr in triples:
        t0 = time.time()
        cos, ra, ra_long = [], [], []
        for seed in range(5):
            emb = embed_cta(model, texts, lambda l, h, tr=tr: tr, seed=seed)
            cos.append((emb * exact).sum(1))
            att = att_ex = 0.0
            for t in texts:
                trc = cached_trace(model, t)
                for lt in trc.layers:
                    lc = _LayerClusters(lt.x, seed, cache)
                    _, k0, _, k1, _, k2 = lc.triple(tr)
                    n = lt.x.shape[0]
                    w = cta_work(n, n, 384, 32, 32, k0, k1, k2, 6)
                    att += w["attention_ops"]
                    att_ex += w["attention_ops_exact"]
            ra.append(att / att_ex)
        cos = np.array(cos)
        row = {"widths": tr, "cos_mean": float(cos.mean()), "cos_seed_min": float(cos.mean(1).min()),
               "cos_seed_max": float(cos.mean(1).max()), "cos_long": float(cos[:, -1].mean()),
               "cos_short_mean": float(cos[:, :-1].mean()), "RA": float(np.mean(ra)), "s": time.time() - t0}
        print(json.dumps(row), flush=True)
