using Diffuse.Data.Images;
using Diffuse.Tests.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.ImageData;

public sealed class ImageDatasetTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    /// <summary>Image i has every pixel equal to 10·i + channel, and label i mod 3.</summary>
    private static ImageDataset Numbered(int count, int channels = 2, int height = 3, int width = 4)
    {
        int perImage = channels * height * width;
        var pixels = new byte[count * perImage];
        for (int i = 0; i < count; i++)
            for (int c = 0; c < channels; c++)
                pixels.AsSpan(i * perImage + c * height * width, height * width).Fill((byte)(10 * i + c));
        var labels = Enumerable.Range(0, count).Select(i => (long)(i % 3)).ToArray();
        return ImageDataset.FromPixels(pixels, channels, height, width, labels, ["a", "b", "c"], "numbered");
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void ToModelRangeMapsZeroToMinusOneAnd255ToOneAndToBytesInvertsEveryValue()
    {
        var all = Enumerable.Range(0, 256).Select(v => (byte)v).ToArray();
        using var bytes = torch.tensor(all, [1, 1, 16, 16], ScalarType.Byte);
        using var model = ImageDataset.ToModelRange(bytes);
        Assert.Equal(ScalarType.Float32, model.dtype);
        Assert.Equal(bytes.shape, model.shape);
        var values = model.data<float>().ToArray();
        Assert.Equal(-1f, values[0]);
        Assert.Equal(1f, values[255]);
        for (int v = 0; v < 256; v++) Assert.Equal((float)(v / 127.5 - 1), values[v], 1e-6f);
        using var back = ImageDataset.ToBytes(model);
        Assert.Equal(ScalarType.Byte, back.dtype);
        Assert.Equal(all, back.data<byte>().ToArray());
    }

    [Fact]
    public void ToBytesRoundsClampsAndMapsNaNToZero()
    {
        using var x = torch.tensor(new[] { -3f, -1f, -0.999f, 0f, 0.5f, 1f, 7f, float.NaN });
        using var b = ImageDataset.ToBytes(x);
        // (x + 1)·127.5: -255, 0, 0.1275, 127.5 → 128 (round half to even), 191.25, 255, 1020, NaN
        Assert.Equal(new byte[] { 0, 0, 0, 128, 191, 255, 255, 0 }, b.data<byte>().ToArray());
    }

    [Fact]
    public void ToModelRangeRejectsFloatInput()
    {
        using var x = torch.zeros(2, 2);
        Assert.Throws<ArgumentException>(() => ImageDataset.ToModelRange(x));
    }

    [Fact]
    public void RandomHorizontalFlipDependsOnlyOnSeedStepAndExample()
    {
        using var data = Numbered(1);
        // One image with distinct columns, repeated 64 times.
        using var one = torch.arange(0, 12, dtype: ScalarType.Byte).view(1, 1, 3, 4);
        using var batch = one.expand(64, 1, 3, 4).contiguous();
        using var flipped = ImageDataset.RandomHorizontalFlip(batch, seed: 7, step: 3);
        int flips = 0;
        for (int k = 0; k < 64; k++)
        {
            bool expected = ImageDataset.IsFlipped(7, 3, k);
            using var row = flipped[k];
            using var want = expected ? one[0].flip(2) : one[0];
            Assert.True(Same(row, want), $"row {k}");
            if (expected) flips++;
        }
        Assert.InRange(flips, 16, 48);

        // The second half of the batch flipped on its own (a shard starting at example 32) matches.
        using var half = batch.narrow(0, 32, 32);
        using var shard = ImageDataset.RandomHorizontalFlip(half, 7, 3, firstExample: 32);
        using var same = flipped.narrow(0, 32, 32);
        Assert.True(Same(shard, same));

        // Another step or seed flips other examples; the same arguments flip the same ones.
        var pattern = Enumerable.Range(0, 64).Select(k => ImageDataset.IsFlipped(7, 3, k)).ToArray();
        Assert.Equal(pattern, Enumerable.Range(0, 64).Select(k => ImageDataset.IsFlipped(7, 3, k)));
        Assert.NotEqual(pattern, Enumerable.Range(0, 64).Select(k => ImageDataset.IsFlipped(7, 4, k)));
        Assert.NotEqual(pattern, Enumerable.Range(0, 64).Select(k => ImageDataset.IsFlipped(8, 3, k)));
        // Example numbers given explicitly.
        using var explicitly = ImageDataset.RandomHorizontalFlip(half, 7, 3, Enumerable.Range(32, 32).Select(i => (long)i).ToArray());
        Assert.True(Same(explicitly, same));
        Assert.True(Same(batch, one.expand(64, 1, 3, 4)), "the input is unchanged");
    }

    [Fact]
    public void SubsetAndBatchPickImagesAndLabels()
    {
        using var data = Numbered(6);
        Assert.Equal((6, 2, 3, 4), (data.Count, data.Channels, data.Height, data.Width));
        using var subset = data.Subset([4, 1]);
        Assert.Equal(2, subset.Count);
        Assert.Equal(new long[] { 1, 1 }, subset.Labels);
        Assert.Equal(40, subset.Images[0, 0, 0, 0].item<byte>());
        Assert.Equal(11, subset.Images[1, 1, 2, 3].item<byte>());
        using var range = data.Subset(2, 3);
        Assert.Equal(new long[] { 2, 0, 1 }, range.Labels);
        Assert.Equal(20, range.Images[0, 0, 0, 0].item<byte>());
        using var labels = data.BatchLabels([5, 0]);
        Assert.Equal(new long[] { 2, 0 }, labels.data<long>().ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Subset([6]));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Subset(4, 3));
        Assert.Equal(new[] { 2, 2, 2 }, data.CountPerClass());
    }

    [Fact]
    public void SplitIsSeededDisjointAndComplete()
    {
        using var data = Numbered(10);
        var (train, held) = data.Split(0.25, seed: 5);
        using (train)
        using (held)
        {
            Assert.Equal(7, train.Count);
            Assert.Equal(3, held.Count);
            var ids = new List<byte>();
            for (int i = 0; i < train.Count; i++) ids.Add(train.Images[i, 0, 0, 0].item<byte>());
            for (int i = 0; i < held.Count; i++) ids.Add(held.Images[i, 0, 0, 0].item<byte>());
            Assert.Equal(Enumerable.Range(0, 10).Select(i => (byte)(10 * i)), ids.Order());
            var (train2, held2) = data.Split(0.25, seed: 5);
            using (train2)
            using (held2)
                Assert.True(Same(held.Images, held2.Images));
        }
        Assert.Throws<DiffuseException>(() => data.Split(1.0));
        Assert.Throws<DiffuseException>(() => data.Split(0.99));
    }

    [Fact]
    public void FromPixelsValidatesItsArguments()
    {
        Assert.Throws<ArgumentException>(() => ImageDataset.FromPixels(new byte[7], 1, 2, 2, null, null, "x"));
        Assert.Throws<ArgumentException>(() => ImageDataset.FromPixels(new byte[8], 1, 2, 2, [0], null, "x"));
        Assert.Throws<ArgumentException>(() => ImageDataset.FromPixels(new byte[8], 1, 2, 2, [0, 2], ["a", "b"], "x"));
        Assert.Throws<ArgumentException>(() => ImageDataset.FromPixels(new byte[8], 1, 2, 2, null, ["a"], "x"));
        using var unnamed = ImageDataset.FromPixels(new byte[8], 1, 2, 2, [0, 3], null, "x");
        Assert.Equal(["0", "1", "2", "3"], unnamed.ClassNames);
        using var unlabelled = ImageDataset.FromPixels(new byte[8], 1, 2, 2, null, null, "x");
        Assert.Null(unlabelled.Labels);
        Assert.Empty(unlabelled.ClassNames);
    }

    [Fact]
    public void CacheFileRoundTripsPixelsLabelsNamesAndSource()
    {
        using var data = Numbered(5, channels: 3, height: 2, width: 7);
        string path = folder.File("sub/set.dfimg");
        ImageDatasetFile.Save(path, data);
        using var back = ImageDatasetFile.Load(path);
        Assert.True(Same(back.Images, data.Images));
        Assert.Equal(data.Labels, back.Labels);
        Assert.Equal(data.ClassNames, back.ClassNames);
        Assert.Equal("numbered", back.Source);
        Assert.Single(Directory.GetFiles(folder.File("sub")));
        Assert.True(ImageDatasetFile.IsComplete(path, out int count));
        Assert.Equal(5, count);

        using var unlabelled = ImageDataset.FromPixels([1, 2, 3, 4], 1, 1, 2, null, null, "u ü");
        ImageDatasetFile.Save(path, unlabelled);
        using var back2 = ImageDatasetFile.Load(path);
        Assert.Null(back2.Labels);
        Assert.Equal("u ü", back2.Source);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, back2.Images.data<byte>().ToArray());
    }

    [Fact]
    public void TruncatedOrForeignCacheFileIsAClearError()
    {
        using var data = Numbered(4);
        string path = folder.File("set.dfimg");
        ImageDatasetFile.Save(path, data);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^20]);
        Assert.False(ImageDatasetFile.IsComplete(path, out _));
        var e = Assert.Throws<DiffuseException>(() => ImageDatasetFile.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("Delete it", e.Message);

        File.WriteAllText(path, "hello, not a cache");
        e = Assert.Throws<DiffuseException>(() => ImageDatasetFile.Load(path));
        Assert.Contains("not an image cache", e.Message);
    }
}
