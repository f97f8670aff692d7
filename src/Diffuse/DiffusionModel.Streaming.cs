using Diffuse.Denoisers;
using Diffuse.Runtime;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse;

public sealed partial class DiffusionModel
{
    /// <summary>
    /// Draws the samples of <see cref="Sample"/> one batch at a time, in order: memory stays that of one batch however
    /// many samples are drawn, so a caller can write each batch out and dispose of it before the next is drawn. Batch b
    /// holds samples <paramref name="first"/> + b·<paramref name="batchSize"/> onwards; concatenated, the batches equal
    /// <see cref="Sample"/>'s result. Each tensor is owned by the caller (it joins the dispose scope open when it is
    /// drawn, if any). The arguments are checked when this is called, before the first batch is drawn.
    /// </summary>
    /// <inheritdoc cref="Sample" path="/param"/>
    /// <exception cref="DiffuseException">An argument is out of range (count, classes, guidance, sampler options).</exception>
    /// <exception cref="OperationCanceledException">The run was cancelled (while a batch is drawn).</exception>
    public IEnumerable<Tensor> SampleBatches(int count, ulong seed, SamplerOptions? options = null, Action<SamplerStep>? onStep = null, long first = 0,
        IReadOnlyList<long>? classes = null, double? guidance = null, int batchSize = 0, CancellationToken cancellationToken = default)
    {
        options ??= DefaultSampler.Options;
        options.Validate();
        double scale = guidance ?? SamplingDefaults.Guidance;
        if (count < 1) throw new DiffuseException($"the number of samples must be at least 1 (got {count}).");
        if (batchSize <= 0) batchSize = IsImage ? DefaultImageBatch : DefaultTableBatch;
        if (classes is not null)
        {
            if (ClassCount == 0) throw new DiffuseException($"this model was trained without classes, so {Param.Of("DiffusionModel.Sample(classes)", "classes")} cannot be used. Sample without it.");
            if (classes.Count != count) throw new ArgumentException($"{classes.Count} class labels were given for {count} samples.", nameof(classes));
            foreach (long c in classes)
                if (c < 0 || c >= ClassCount)
                    throw new DiffuseException($"class {c} does not exist: this model knows classes 0 … {ClassCount - 1} ({string.Join(", ", ClassNames.Select((n, i) => $"{i} {n}"))}).");
        }
        if (double.IsNaN(scale) || scale < 0) throw new DiffuseException($"the guidance scale must be zero or positive (got {scale}).");
        cancellationToken.ThrowIfCancellationRequested();
        Action<SamplerStep>? report = !cancellationToken.CanBeCanceled ? onStep : step =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            onStep?.Invoke(step);
        };
        return Batches(count, seed, options, report, first, classes, scale, batchSize);
    }

    private IEnumerable<Tensor> Batches(int count, ulong seed, SamplerOptions options, Action<SamplerStep>? report, long first,
        IReadOnlyList<long>? classes, double scale, int batchSize)
    {
        for (long start = first; start < first + count; start += batchSize)
        {
            TorchThreads.Apply(IsImage);
            yield return SampleBatch(seed, options, report, first, classes, scale, start, (int)Math.Min(batchSize, first + count - start));
        }
    }

    /// <summary>One batch, in its own dispose scope (closed before the batch is handed to the caller).</summary>
    private Tensor SampleBatch(ulong seed, SamplerOptions options, Action<SamplerStep>? report, long first, IReadOnlyList<long>? classes,
        double scale, long start, int size)
    {
        using var scope = NewDisposeScope();
        var denoiser = DenoiserFor(classes is null ? null : Enumerable.Range((int)(start - first), size).Select(i => classes[i]).ToArray(), scale);
        var z = Sampler.SampleBatch(denoiser, Schedule, ExampleShape, start, size, seed, options, report, Device);
        var result = (IsImage ? z.clamp(-1, 1) : Normalization.Invert(z)).cpu();
        return result.MoveToOuterDisposeScope();
    }
}
