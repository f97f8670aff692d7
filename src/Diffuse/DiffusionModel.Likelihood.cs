using Diffuse.Data.Images;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse;

public sealed partial class DiffusionModel
{
    /// <summary>
    /// <see cref="Bound(Tensor, ulong, DdpmVariance, Action{int, int}?, CancellationToken)"/> with the decoder's fixed
    /// variance at t = 1 chosen: <see cref="DecoderVariance.ClippedPosterior"/> (the default of the other overload, the
    /// convention of published tables) or <see cref="DecoderVariance.FirstBeta"/> (Diffuse 0.1.0's).
    /// </summary>
    /// <param name="data">Rows in the data's original units, [N, D].</param>
    /// <param name="decoderVariance">The decoder's variance at t = 1 (a model that learns its variance uses its own).</param>
    /// <param name="seed">Seed of the noise.</param>
    /// <param name="variance">The reverse variance (a model that learns it uses its own).</param>
    /// <param name="onProgress">Called with (network evaluations done, total): the bound costs T evaluations per row.</param>
    /// <param name="cancellationToken">Stops the computation at the next network evaluation.</param>
    public BoundResult Bound(Tensor data, DecoderVariance decoderVariance, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large,
        Action<int, int>? onProgress = null, CancellationToken cancellationToken = default)
    {
        CheckColumns(data);
        onProgress = Cancellable(onProgress, cancellationToken);
        using var scope = NewDisposeScope();
        var standardised = Normalization.Apply(data).to(Device);
        return VariationalBound.Compute(Denoiser, Schedule, standardised, seed, variance, new GaussianDecoder(),
            Normalization.LogScalePerDimension, onProgress: onProgress, decoderVariance: decoderVariance);
    }

    /// <summary>
    /// <see cref="Bound(ImageDataset, ulong, DdpmVariance, Action{int, int}?, int, int, CancellationToken)"/> with the
    /// decoder's fixed variance at t = 1 chosen (see <see cref="DecoderVariance"/>).
    /// </summary>
    /// <param name="images">8-bit images of the model's shape.</param>
    /// <param name="decoderVariance">The decoder's variance at t = 1 (a model that learns its variance uses its own).</param>
    /// <param name="seed">Seed of the noise (and of the sampled timesteps).</param>
    /// <param name="variance">The reverse variance (a model that learns it uses its own).</param>
    /// <param name="onProgress">Called with (network evaluations done, total).</param>
    /// <param name="batchSize">Images per batch.</param>
    /// <param name="timestepSamples">0 for every one of the T terms; K for an unbiased stratified estimate from K terms per batch.</param>
    /// <param name="cancellationToken">Stops the computation at the next network evaluation.</param>
    public BoundResult Bound(ImageDataset images, DecoderVariance decoderVariance, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large,
        Action<int, int>? onProgress = null, int batchSize = 250, int timestepSamples = 0, CancellationToken cancellationToken = default)
    {
        CheckImages(images);
        onProgress = Cancellable(onProgress, cancellationToken);
        using var scope = NewDisposeScope();
        var x = ImageDataset.ToModelRange(images.Images).to(Device);
        return VariationalBound.Compute(Denoiser, Schedule, x, seed, variance, new DiscretizedGaussianDecoder(), 0, batchSize,
            onProgress, timestepSamples, decoderVariance);
    }
}
