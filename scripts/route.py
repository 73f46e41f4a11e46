"""Rule route: every test image's class predicted from the image alone (k-NN vote among every
class's training images on mean-pooled backbone features; adloc.routing), one file per repeat
and feature set, with its accuracy and predicted-vs-true tables and figure. evaluate_global
reads it for the routed scope."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import savefig
    from adloc.analysis.routing import plot_routing, routing_tables, write_routing_tables
    from adloc.analysis.tsne import pooled_backbone_features
    from adloc.data.splits import read_splits
    from adloc.features import load_features
    from adloc.io import write_json
    from adloc.routing import route, routing_record

    p = smk.params
    classes = list(p.classes)

    def pooled(features, split_files, split):
        splits = [read_splits(f) for f in as_list(split_files)]
        paths = [[e["path"] for e in s["splits"][split]] for s in splits]
        sets = [load_features(f, paths=ps, keep_dtype=True) for f, ps in zip(as_list(features), paths)]
        x, labels = pooled_backbone_features(sets, classes)
        return x, labels, paths, {s["class"]: s for s in splits}

    train_x, train_labels, train_paths, _ = pooled(smk.input.train, smk.input.train_splits, "train")
    test_x, _, test_paths, test_splits = pooled(smk.input.test, smk.input.test_splits, "test")
    predicted, _ = route(train_x, train_labels, test_x, p.k, classes)  # no test label is read
    by_class, start = {}, 0
    for cls, paths in zip(classes, test_paths):
        by_class[cls] = list(predicted[start:start + len(paths)])
        start += len(paths)
    record = routing_record(dict(zip(classes, test_paths)), by_class, classes, p.k, p.fset,
                            {c: len(ps) for c, ps in zip(classes, train_paths)})
    write_json(smk.output.routing, record)
    accuracy, confusion = routing_tables(record, test_splits)
    write_routing_tables(smk.output.accuracy, smk.output.confusion, accuracy, confusion)
    savefig(plot_routing(confusion, p.fset, p.k, accuracy), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
