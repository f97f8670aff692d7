using Diffuse.Data.Images;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.Features;

/// <summary>
/// A fixed network whose activations are the feature space of the image-quality metrics (Fréchet distance, KID,
/// precision and recall; see <see cref="SampleQuality.ImageQualityReport"/>), and optionally a classifier whose logits measure the
/// class accuracy of conditional samples. Implementations: <see cref="FeatureClassifier"/> (our own small network,
/// trained on the data set) and <see cref="FidInceptionV3"/> (Inception-v3 with pytorch-fid's weights, the network FID
/// is defined on); <see cref="FeatureNetworks.Load"/> opens either from a safetensors file.
/// </summary>
/// <remarks>
/// <para>Input. Images <c>[N, C, H, W]</c> in the model range [−1, 1] (float32 or float64), or 8-bit pixels (uint8,
/// mapped per batch with <see cref="ImageDataset.ToModelRange"/>), on the CPU. A network that runs at another size
/// adapts the images itself: one grey channel is repeated to the network's channel count (what converting a grey
/// image to RGB does), and images of another height or width are resized bilinearly (half-pixel centres, no
/// antialiasing, as <c>torch.nn.functional.interpolate(mode="bilinear", align_corners=False)</c>). Any other channel
/// count is an error.</para>
/// <para>Memory. The images are processed in batches inside one dispose scope each, without gradients and in
/// evaluation mode, so memory stays flat however many images are passed; only the results accumulate. The caller
/// keeps ownership of the input and owns the returned tensors (float32, CPU).</para>
/// </remarks>
public interface IImageFeatureNetwork : IDisposable
{
    /// <summary>What the features are, for metric names: e.g. "Diffuse Fashion-MNIST features", "Inception-v3 (pytorch-fid)".</summary>
    string Name { get; }

    /// <summary>
    /// True only for Inception-v3 with the architecture of pytorch-fid (<see cref="FidInceptionV3"/>): the network FID
    /// and KID are defined on. Reports then say "FID" and "KID"; on any other network "FD (name)" and "KD (name)".
    /// </summary>
    bool IsFidInception { get; }

    /// <summary>The channel count the network runs at (after repeating a grey channel).</summary>
    int InputChannels { get; }

    /// <summary>The image height the network runs at (other heights are resized).</summary>
    int InputHeight { get; }

    /// <summary>The image width the network runs at (other widths are resized).</summary>
    int InputWidth { get; }

    /// <summary>The length F of one feature vector.</summary>
    int FeatureCount { get; }

    /// <summary>The number of classes of <see cref="Embed"/>'s logits, or 0 when the network has no classifier for the data set's classes.</summary>
    int ClassCount { get; }

    /// <summary>The feature vectors [N, F] (float32, CPU) of images [N, C, H, W] in [−1, 1] or uint8.</summary>
    Tensor Features(Tensor images);

    /// <summary>
    /// The feature vectors [N, F] and the class logits [N, <see cref="ClassCount"/>] (null when <see cref="ClassCount"/>
    /// is 0) of images [N, C, H, W] in [−1, 1] or uint8, in one pass.
    /// </summary>
    (Tensor Features, Tensor? Logits) Embed(Tensor images);
}

/// <summary>The batching and input adaptation shared by the <see cref="IImageFeatureNetwork"/> implementations.</summary>
internal static class ImageFeatureBatches
{
    /// <summary>
    /// Runs <paramref name="embedBatch"/> on batches of <paramref name="images"/> adapted to the network's input (see
    /// <see cref="Adapt"/>), in evaluation mode without gradients, one dispose scope per batch, and concatenates the
    /// float32 CPU results.
    /// </summary>
    public static (Tensor Features, Tensor? Logits) Embed(IImageFeatureNetwork network, Tensor images, int batchSize,
        Func<Tensor, (Tensor Features, Tensor? Logits)> embedBatch)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (images.dim() != 4 || images.shape[0] < 1)
            throw new DiffuseException($"{network.Name} takes images [N, C, H, W] with N ≥ 1; got shape [{string.Join(", ", images.shape)}].");
        if (images.dtype != ScalarType.Byte && !images.is_floating_point())
            throw new DiffuseException($"{network.Name} takes images in [-1, 1] (floating point) or 8-bit pixels; got {images.dtype}.");
        using var noGrad = no_grad();
        var features = new List<Tensor>();
        var logits = new List<Tensor>();
        try
        {
            for (long start = 0; start < images.shape[0]; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var batch = Adapt(network, images.narrow(0, start, Math.Min(batchSize, images.shape[0] - start)));
                var (f, l) = embedBatch(batch);
                features.Add(f.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope());
                if (l is not null) logits.Add(l.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope());
            }
            var allFeatures = cat(features, 0);
            return (allFeatures, logits.Count == 0 ? null : cat(logits, 0));
        }
        finally
        {
            foreach (var t in features.Concat(logits)) t.Dispose();
        }
    }

    /// <summary>
    /// Maps a batch to the network's input: uint8 to [−1, 1], float32; one channel repeated to
    /// <see cref="IImageFeatureNetwork.InputChannels"/>; bilinear resize (align_corners = false) to the network's size.
    /// </summary>
    public static Tensor Adapt(IImageFeatureNetwork network, Tensor batch)
    {
        var x = batch.dtype == ScalarType.Byte ? ImageDataset.ToModelRange(batch) : batch.to(ScalarType.Float32);
        long channels = x.shape[1];
        if (channels != network.InputChannels)
        {
            if (channels != 1)
                throw new DiffuseException($"{network.Name} takes {network.InputChannels}-channel images (or grey images, repeated); got {channels} channels.");
            x = x.expand(-1, network.InputChannels, -1, -1);
        }
        if (x.shape[2] != network.InputHeight || x.shape[3] != network.InputWidth)
            x = nn.functional.interpolate(x, size: [network.InputHeight, network.InputWidth], mode: InterpolationMode.Bilinear, align_corners: false);
        return x;
    }
}
