using System.Buffers.Binary;
using System.IO.Compression;
using Diffuse.Data.Images;
using Diffuse.Tests.Data;

namespace Diffuse.Tests.ImageData;

public sealed class IdxReaderTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    /// <summary>Writes an IDX file of unsigned bytes; <paramref name="magic"/> overrides the standard magic number.</summary>
    internal static string WriteIdx(string path, int[] dims, byte[] values, bool gzip = false, int? magic = null)
    {
        var bytes = new byte[4 + 4 * dims.Length + values.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic ?? (0x0800 | dims.Length));
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        values.CopyTo(bytes, 4 + 4 * dims.Length);
        if (gzip)
        {
            using var file = File.Create(path);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(bytes);
        }
        else File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Three 2×3 images whose pixel (i, y, x) is 100·i + 10·y + x, and labels 2, 0, 1.</summary>
    private (string Images, string Labels) WriteSet(string prefix, bool gzip)
    {
        var pixels = new byte[3 * 2 * 3];
        for (int i = 0; i < 3; i++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 3; x++) pixels[i * 6 + y * 3 + x] = (byte)(100 * i + 10 * y + x);
        string ext = gzip ? ".gz" : "";
        string images = WriteIdx(folder.File($"{prefix}-images-idx3-ubyte{ext}"), [3, 2, 3], pixels, gzip);
        string labels = WriteIdx(folder.File($"{prefix}-labels-idx1-ubyte{ext}"), [3], [2, 0, 1], gzip);
        return (images, labels);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsImagesAndFindsLabelsBesideThem(bool gzip)
    {
        var (images, labels) = WriteSet("train", gzip);
        var log = new List<string>();
        using var data = IdxReader.Load(images, log: log.Add);
        Assert.Equal((3, 1, 2, 3), (data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal(new long[] { 2, 0, 1 }, data.Labels);
        Assert.Equal(["0", "1", "2"], data.ClassNames);
        Assert.Equal(112, data.Images[1, 0, 1, 2].item<byte>());
        Assert.Equal(201, data.Images[2, 0, 0, 1].item<byte>());
        Assert.Contains(log, l => l.Contains(Path.GetFileName(labels)));
        Assert.Equal(labels, IdxReader.FindLabels(images));
    }

    [Fact]
    public void FindsLabelsWhateverTheCompressionAndLoadsAFolderBySplit()
    {
        WriteSet("t10k", gzip: false);
        // Plain images with gzip labels: the labels are found under either name.
        File.Move(folder.File("t10k-labels-idx1-ubyte"), folder.File("t10k-labels-idx1-ubyte.gz"));
        using var test = IdxReader.LoadFolder(folder.Path, DatasetSplit.Test, ["a", "b", "c"]);
        Assert.Equal(["a", "b", "c"], test.ClassNames);
        Assert.Equal(3, test.Count);
        var e = Assert.Throws<DiffuseException>(() => IdxReader.LoadFolder(folder.Path, DatasetSplit.Train));
        Assert.Contains("train-images-idx3-ubyte", e.Message);
    }

    [Fact]
    public void WithoutALabelsFileTheImagesAreUnlabelled()
    {
        var (images, labels) = WriteSet("train", gzip: false);
        File.Delete(labels);
        var log = new List<string>();
        using var data = IdxReader.Load(images, log: log.Add);
        Assert.Null(data.Labels);
        Assert.Contains(log, l => l.Contains("unlabelled"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedImagesFileNamesTheFileAndBothSizes(bool gzip)
    {
        string path = folder.File("train-images-idx3-ubyte");
        var full = new byte[4 + 12 + 3 * 28 * 28];
        BinaryPrimitives.WriteInt32BigEndian(full, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(full.AsSpan(4), 3);
        BinaryPrimitives.WriteInt32BigEndian(full.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(full.AsSpan(12), 28);
        var cut = full[..(16 + 2 * 784 + 100)];
        if (gzip)
        {
            path += ".gz";
            using var file = File.Create(path);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(cut);
        }
        else File.WriteAllBytes(path, cut);
        var e = Assert.Throws<DiffuseException>(() => IdxReader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("3 images of 28×28", e.Message);
        Assert.Contains("2,352", e.Message);
        Assert.Contains("1,668", e.Message);
        Assert.Contains("2 whole images", e.Message);
    }

    [Fact]
    public void TruncatedGzipStreamIsAClearError()
    {
        var (images, _) = WriteSet("train", gzip: true);
        var bytes = File.ReadAllBytes(images);
        File.WriteAllBytes(images, bytes[..(bytes.Length - 12)]);
        var e = Assert.Throws<DiffuseException>(() => IdxReader.Load(images, folder.File("train-labels-idx1-ubyte.gz")));
        Assert.Contains(images, e.Message);
    }

    [Fact]
    public void WrongMagicNumberIsNamed()
    {
        string path = WriteIdx(folder.File("train-images-idx3-ubyte"), [3, 2, 3], new byte[18], magic: 0x12345678);
        var e = Assert.Throws<DiffuseException>(() => IdxReader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("0x12345678", e.Message);
        Assert.Contains("0x00000803", e.Message);

        // A labels file given as images, and floats instead of bytes.
        string labels = WriteIdx(folder.File("labels"), [3], [1, 2, 3]);
        e = Assert.Throws<DiffuseException>(() => IdxReader.Load(labels));
        Assert.Contains("label file", e.Message);
        string floats = WriteIdx(folder.File("floats"), [1, 1, 1], new byte[4], magic: 0x0D03);
        e = Assert.Throws<DiffuseException>(() => IdxReader.Load(floats));
        Assert.Contains("0x0D", e.Message);
    }

    [Fact]
    public void ExtraBytesAndMismatchedLabelCountsAreErrors()
    {
        string images = WriteIdx(folder.File("train-images-idx3-ubyte"), [2, 2, 2], new byte[9]);
        var e = Assert.Throws<DiffuseException>(() => IdxReader.Load(images));
        Assert.Contains("more data than its header announces", e.Message);

        WriteIdx(images, [2, 2, 2], new byte[8]);
        string labels = WriteIdx(folder.File("train-labels-idx1-ubyte"), [3], [0, 1, 2]);
        e = Assert.Throws<DiffuseException>(() => IdxReader.Load(images));
        Assert.Contains("3 labels for the 2 images", e.Message);
        Assert.Contains(labels, e.Message);

        WriteIdx(labels, [2], [0, 5]);
        e = Assert.Throws<DiffuseException>(() => IdxReader.Load(images, classNames: ["a", "b"]));
        Assert.Contains("label 5", e.Message);
    }

    [Fact]
    public void MissingFileAndFolderAreNamed()
    {
        var e = Assert.Throws<DiffuseException>(() => IdxReader.Load(folder.File("nope-images-idx3-ubyte")));
        Assert.Contains("does not exist", e.Message);
        e = Assert.Throws<DiffuseException>(() => IdxReader.Load(folder.Path));
        Assert.Contains("is a folder", e.Message);
    }
}
