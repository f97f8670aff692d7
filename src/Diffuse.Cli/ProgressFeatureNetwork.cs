using static TorchSharp.torch;
using Diffuse.Evaluation.Features;

namespace Diffuse.Cli;

/// <summary>
/// A feature network that reports its progress: it passes images to the wrapped network in chunks and advances one
/// progress bar over all the images it will see (the caller says how many), so that the embedding inside
/// <see cref="ImageQualityReport.Evaluate"/> shows a bar with an ETA. Does not own the wrapped network.
/// </summary>
public sealed class ProgressFeatureNetwork : IImageFeatureNetwork
{
    private const int Chunk = 250;
    private readonly IImageFeatureNetwork _inner;
    private readonly ProgressBar _bar;
    private readonly CancellationToken _cancellationToken;
    private long _done;

    /// <summary>Wraps <paramref name="inner"/> for <paramref name="totalImages"/> images in all.</summary>
    public ProgressFeatureNetwork(IImageFeatureNetwork inner, long totalImages, CancellationToken cancellationToken)
    {
        _inner = inner;
        _bar = new ProgressBar("embed", totalImages, "img");
        _cancellationToken = cancellationToken;
    }

    /// <inheritdoc />
    public string Name => _inner.Name;

    /// <inheritdoc />
    public bool IsFidInception => _inner.IsFidInception;

    /// <inheritdoc />
    public int InputChannels => _inner.InputChannels;

    /// <inheritdoc />
    public int InputHeight => _inner.InputHeight;

    /// <inheritdoc />
    public int InputWidth => _inner.InputWidth;

    /// <inheritdoc />
    public int FeatureCount => _inner.FeatureCount;

    /// <inheritdoc />
    public int ClassCount => _inner.ClassCount;

    /// <inheritdoc />
    public Tensor Features(Tensor images)
    {
        var (features, logits) = Embed(images);
        logits?.Dispose();
        return features;
    }

    /// <inheritdoc />
    public (Tensor Features, Tensor? Logits) Embed(Tensor images)
    {
        var features = new List<Tensor>();
        var logits = new List<Tensor>();
        try
        {
            for (long start = 0; start < images.shape[0]; start += Chunk)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                long size = Math.Min(Chunk, images.shape[0] - start);
                var (f, l) = _inner.Embed(images.narrow(0, start, size));
                features.Add(f.MoveToOuterDisposeScope());
                if (l is not null) logits.Add(l.MoveToOuterDisposeScope());
                _done += size;
                _bar.Report(_done);
            }
            return (cat(features, 0), logits.Count == 0 ? null : cat(logits, 0));
        }
        finally
        {
            foreach (var t in features.Concat(logits)) t.Dispose();
        }
    }

    /// <summary>Ends the progress bar (the wrapped network stays open).</summary>
    public void Dispose() => _bar.Dispose();
}
