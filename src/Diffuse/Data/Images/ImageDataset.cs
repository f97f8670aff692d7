using Diffuse.Randomness;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Data.Images;

/// <summary>Which part of a data set with a fixed split to load.</summary>
public enum DatasetSplit
{
    /// <summary>The training split.</summary>
    Train,

    /// <summary>The test (held-out) split.</summary>
    Test,
}

/// <summary>
/// A set of images in memory, the one representation every image reader returns: 8-bit pixels as a uint8 CPU tensor
/// of shape <c>[N, C, H, W]</c> (channel-major, rows top to bottom), optional integer class labels and the class names.
/// </summary>
/// <remarks>
/// <para>Range. Pixels stay bytes in memory (a quarter of float32). The data pipeline maps a batch to the model's
/// range with <see cref="ToModelRange"/> (x/127.5 − 1, so 0 → −1 and 255 → 1) and back with <see cref="ToBytes"/>;
/// models never normalise.</para>
/// <para>Ownership. The data set owns <see cref="Images"/> and disposes it in <see cref="Dispose"/>. Every tensor a
/// method returns is new and owned by the caller. <see cref="Labels"/> and <see cref="ClassNames"/> are the data
/// set's own arrays, returned without copying: treat them as read-only.</para>
/// </remarks>
public sealed class ImageDataset : IDisposable
{
    /// <summary>The stream of <see cref="SeededNoise"/> that decides horizontal flips.</summary>
    public const ulong FlipStream = StreamDomains.ImageFlip;

    private ImageDataset(Tensor images, long[]? labels, string[] classNames, string source)
    {
        Images = images;
        Labels = labels;
        ClassNames = classNames;
        Source = source;
        Count = (int)images.shape[0];
        Channels = (int)images.shape[1];
        Height = (int)images.shape[2];
        Width = (int)images.shape[3];
    }

    /// <summary>The pixels: uint8, CPU, shape <c>[Count, Channels, Height, Width]</c>; owned by this data set.</summary>
    public Tensor Images { get; }

    /// <summary>The class of each image (0 … <c>ClassNames.Length − 1</c>), or null for an unlabelled set.</summary>
    public long[]? Labels { get; }

    /// <summary>The name of each class, indexed by label; empty for an unlabelled set.</summary>
    public string[] ClassNames { get; }

    /// <summary>What the images were read from (a data set name, a file or a folder), for messages and checkpoints.</summary>
    public string Source { get; }

    /// <summary>
    /// The licence and attribution of the images when their source states one (for instance the emoji sets of
    /// <see cref="EmojiDatasets"/>), else null; recorded in the config of a model trained on them and kept by subsets.
    /// </summary>
    public string? Licence { get; internal set; }

    /// <summary>The number of images.</summary>
    public int Count { get; }

    /// <summary>Channels per image: 1 (grey) or 3 (RGB) for the readers of this library.</summary>
    public int Channels { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>
    /// Makes a data set from pixel bytes laid out <c>[N, C, H, W]</c> (N = <c>pixels.Length / (C·H·W)</c>). Copies
    /// the pixels; takes <paramref name="labels"/> and <paramref name="classNames"/> without copying them.
    /// </summary>
    /// <param name="pixels">The pixel bytes, image after image, each channel after channel, each row top to bottom.</param>
    /// <param name="channels">Channels per image.</param>
    /// <param name="height">Rows per image.</param>
    /// <param name="width">Columns per image.</param>
    /// <param name="labels">One class per image, or null for an unlabelled set.</param>
    /// <param name="classNames">
    /// The class names; with labels and null names the classes are called "0", "1", … up to the largest label.
    /// </param>
    /// <param name="source">What the images were read from.</param>
    /// <exception cref="ArgumentException">
    /// A size is not positive, the bytes are not a whole number of images, there is no image, the label count differs
    /// from the image count, a label is outside the classes, or names are given without labels.
    /// </exception>
    public static ImageDataset FromPixels(byte[] pixels, int channels, int height, int width, long[]? labels,
        string[]? classNames, string source)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        long perImage = (long)channels * height * width;
        if (pixels.Length == 0 || pixels.Length % perImage != 0)
            throw new ArgumentException(
                $"{pixels.Length} bytes are not a positive whole number of {channels}×{height}×{width} images.", nameof(pixels));
        long count = pixels.Length / perImage;
        string[] names = CheckLabels(labels, classNames, count);
        var images = torch.tensor(pixels, [count, channels, height, width], ScalarType.Byte);
        return new ImageDataset(images, labels, names, source);
    }

    /// <summary>
    /// Maps 8-bit pixels to the model's range: float32 x/127.5 − 1, so 0 → −1, 255 → 1 exactly and each step is
    /// 2/255. Returns a new tensor of the same shape, owned by the caller.
    /// </summary>
    /// <exception cref="ArgumentException">The batch is not uint8.</exception>
    public static Tensor ToModelRange(Tensor uint8Batch)
    {
        ArgumentNullException.ThrowIfNull(uint8Batch);
        if (uint8Batch.dtype != ScalarType.Byte)
            throw new ArgumentException($"expected uint8 pixels, got {uint8Batch.dtype}.", nameof(uint8Batch));
        using var scope = NewDisposeScope();
        return uint8Batch.to(ScalarType.Float32).div_(127.5).sub_(1.0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The inverse of <see cref="ToModelRange"/> for model outputs: round((x + 1)·127.5), clamped to 0 … 255, as uint8
    /// (NaN becomes 0). Returns a new tensor of the same shape, owned by the caller.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not floating point.</exception>
    public static Tensor ToBytes(Tensor modelRange)
    {
        ArgumentNullException.ThrowIfNull(modelRange);
        if (!modelRange.is_floating_point())
            throw new ArgumentException($"expected floating-point values in [-1, 1], got {modelRange.dtype}.", nameof(modelRange));
        using var scope = NewDisposeScope();
        return modelRange.to(ScalarType.Float32).add(1.0).mul_(127.5).nan_to_num_(0.0).round_().clamp_(0, 255)
            .to(ScalarType.Byte).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Whether example <paramref name="example"/> of training step <paramref name="step"/> is mirrored by
    /// <see cref="RandomHorizontalFlip(Tensor, ulong, long, long)"/>: a fair coin that depends on these three numbers
    /// only, never on the batch size, the batch composition or the number of processes.
    /// </summary>
    public static bool IsFlipped(ulong seed, long step, long example) =>
        SeededNoise.Uniform(SeededNoise.Key(seed, FlipStream, unchecked((ulong)step)), 0, unchecked((ulong)example)) < 0.5;

    /// <summary>
    /// Mirrors each image of a batch left to right with probability ½ (data augmentation). Row k of the batch is
    /// example <c>firstExample + k</c> of step <paramref name="step"/>; whether it flips is
    /// <see cref="IsFlipped"/>(seed, step, example). Returns a new tensor owned by the caller.
    /// </summary>
    /// <param name="batch">Images <c>[B, C, H, W]</c> of any dtype.</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="step">The training step.</param>
    /// <param name="firstExample">
    /// The number of the batch's first row within the step's global batch (a process that holds a shard of the batch
    /// passes the shard's offset, so every process flips the same examples as a single process would).
    /// </param>
    public static Tensor RandomHorizontalFlip(Tensor batch, ulong seed, long step, long firstExample = 0)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var examples = new long[batch.shape.Length > 0 ? batch.shape[0] : 0];
        for (int k = 0; k < examples.Length; k++) examples[k] = firstExample + k;
        return RandomHorizontalFlip(batch, seed, step, examples);
    }

    /// <summary>
    /// Mirrors row k of the batch left to right when <see cref="IsFlipped"/>(seed, step, examples[k]), for callers that
    /// number examples themselves (for instance by their index in the data set). Returns a new tensor owned by the caller.
    /// </summary>
    /// <exception cref="ArgumentException">The batch is not 4-D or the example count differs from the batch size.</exception>
    public static Tensor RandomHorizontalFlip(Tensor batch, ulong seed, long step, ReadOnlySpan<long> examples)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.dim() != 4)
            throw new ArgumentException($"expected a batch of images [B, C, H, W], got shape [{string.Join(", ", batch.shape)}].", nameof(batch));
        if (examples.Length != batch.shape[0])
            throw new ArgumentException($"{examples.Length} example numbers were given for a batch of {batch.shape[0]}.", nameof(examples));
        var flip = new bool[examples.Length];
        bool any = false;
        for (int k = 0; k < flip.Length; k++) any |= flip[k] = IsFlipped(seed, step, examples[k]);
        if (!any) return batch.clone();
        using var scope = NewDisposeScope();
        var mask = torch.tensor(flip, device: batch.device).view(-1, 1, 1, 1);
        return torch.where(mask, batch.flip(3), batch).MoveToOuterDisposeScope();
    }

    /// <summary>The images at <paramref name="indices"/>, uint8 <c>[indices.Length, C, H, W]</c>, owned by the caller.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside 0 … Count − 1.</exception>
    public Tensor Batch(ReadOnlySpan<long> indices)
    {
        CheckIndices(indices);
        using var index = torch.tensor(indices.ToArray());
        return Images.index_select(0, index);
    }

    /// <summary>The labels at <paramref name="indices"/> as an int64 tensor, owned by the caller.</summary>
    /// <exception cref="InvalidOperationException">The data set has no labels.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside 0 … Count − 1.</exception>
    public Tensor BatchLabels(ReadOnlySpan<long> indices)
    {
        if (Labels is null) throw new InvalidOperationException($"the images of '{Source}' have no labels.");
        CheckIndices(indices);
        var chosen = new long[indices.Length];
        for (int k = 0; k < chosen.Length; k++) chosen[k] = Labels[indices[k]];
        return torch.tensor(chosen);
    }

    /// <summary>A new data set of the images at <paramref name="indices"/>, in that order, with the same classes and source.</summary>
    /// <exception cref="ArgumentException">No index is given.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside 0 … Count − 1.</exception>
    public ImageDataset Subset(ReadOnlySpan<long> indices)
    {
        if (indices.IsEmpty) throw new ArgumentException("a subset needs at least one image.", nameof(indices));
        var images = Batch(indices);
        long[]? labels = null;
        if (Labels is not null)
        {
            labels = new long[indices.Length];
            for (int k = 0; k < labels.Length; k++) labels[k] = Labels[indices[k]];
        }
        return new ImageDataset(images, labels, ClassNames, Source) { Licence = Licence };
    }

    /// <summary>A new data set of the <paramref name="count"/> images starting at <paramref name="start"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or reaches outside the data set.</exception>
    public ImageDataset Subset(int start, int count)
    {
        if (start < 0 || count < 1 || start > Count - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"images {start} … {start + count - 1} are not within 0 … {Count - 1}.");
        var images = Images.narrow(0, start, count).clone();
        var labels = Labels is null ? null : Labels.AsSpan(start, count).ToArray();
        return new ImageDataset(images, labels, ClassNames, Source) { Licence = Licence };
    }

    /// <summary>
    /// Splits the images into (train, held-out) with a permutation seeded by <paramref name="seed"/>: the last
    /// ⌈fraction·N⌉ images of the permutation are held out, and each part keeps the permutation's order. Both parts
    /// are new data sets owned by the caller.
    /// </summary>
    /// <exception cref="DiffuseException">The fraction is not strictly between 0 and 1, or leaves a part empty.</exception>
    public (ImageDataset Train, ImageDataset HeldOut) Split(double heldOutFraction, ulong seed = TabularSource.SplitSeed)
    {
        if (!(heldOutFraction > 0 && heldOutFraction < 1))
            throw new DiffuseException($"the held-out fraction must lie strictly between 0 and 1 (got {heldOutFraction}).");
        int held = (int)Math.Ceiling(heldOutFraction * Count);
        if (held < 1 || Count - held < 1)
            throw new DiffuseException($"{Count} images of '{Source}' are too few to hold out {heldOutFraction:P0} and keep some for training; add images or hold out less.");
        var order = SeededNoise.Permutation(seed, 0, Count).Select(i => (long)i).ToArray();
        var train = Subset(order.AsSpan(0, Count - held));
        try
        {
            return (train, Subset(order.AsSpan(Count - held)));
        }
        catch
        {
            train.Dispose();
            throw;
        }
    }

    /// <summary>How many images each class has (index = label); empty for an unlabelled set.</summary>
    public int[] CountPerClass()
    {
        var counts = new int[ClassNames.Length];
        if (Labels is not null)
            foreach (long label in Labels) counts[label]++;
        return counts;
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Source}: {Count} images of {Channels}×{Height}×{Width}" + (Labels is null ? "" : $", {ClassNames.Length} classes");

    /// <summary>Disposes <see cref="Images"/>.</summary>
    public void Dispose() => Images.Dispose();

    /// <summary>Makes a data set around a uint8 <c>[N, C, H, W]</c> tensor it takes ownership of (no checks beyond the shape).</summary>
    internal static ImageDataset Own(Tensor images, long[]? labels, string[]? classNames, string source)
    {
        if (images.dtype != ScalarType.Byte || images.dim() != 4 || images.shape[0] < 1)
            throw new ArgumentException($"expected uint8 images [N, C, H, W] with N ≥ 1, got {images.dtype} [{string.Join(", ", images.shape)}].", nameof(images));
        return new ImageDataset(images, labels, CheckLabels(labels, classNames, images.shape[0]), source);
    }

    private static string[] CheckLabels(long[]? labels, string[]? classNames, long count)
    {
        if (labels is null)
        {
            if (classNames is { Length: > 0 })
                throw new ArgumentException("class names were given for images without labels.", nameof(classNames));
            return [];
        }
        if (labels.Length != count)
            throw new ArgumentException($"{labels.Length} labels were given for {count} images.", nameof(labels));
        long max = -1;
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] < 0 || (classNames is not null && labels[i] >= classNames.Length))
                throw new ArgumentException(
                    $"label {labels[i]} of image {i} is outside the {classNames?.Length} classes.", nameof(labels));
            max = Math.Max(max, labels[i]);
        }
        return classNames ?? Enumerable.Range(0, (int)(max + 1)).Select(k => k.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    private void CheckIndices(ReadOnlySpan<long> indices)
    {
        foreach (long i in indices)
            if (i < 0 || i >= Count)
                throw new ArgumentOutOfRangeException(nameof(indices), i, $"image index outside 0 … {Count - 1}.");
    }
}
