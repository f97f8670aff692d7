using Diffuse.Data.Images;
using Diffuse.Tests.Data;

namespace Diffuse.Tests.ImageData;

public sealed class CifarReaderTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    /// <summary>A record whose channel c, row y, column x holds (label + 50·c + y + x) mod 256.</summary>
    private static byte[] Record(byte label)
    {
        var record = new byte[CifarReader.RecordBytes];
        record[0] = label;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) record[1 + c * 1024 + y * 32 + x] = (byte)((label + 50 * c + y + x) % 256);
        return record;
    }

    private string WriteBatch(string name, params byte[] labels)
    {
        string path = folder.File(name);
        File.WriteAllBytes(path, labels.SelectMany(Record).ToArray());
        return path;
    }

    [Fact]
    public void ReadsTwoRecordsChannelMajorWithStandardNames()
    {
        string path = WriteBatch("data_batch_1.bin", 3, 9);
        using var data = CifarReader.Load(path);
        Assert.Equal((2, 3, 32, 32), (data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal(new long[] { 3, 9 }, data.Labels);
        Assert.Equal("cat", data.ClassNames[3]);
        Assert.Equal("truck", data.ClassNames[9]);
        Assert.Equal((3 + 0 + 5 + 7) % 256, data.Images[0, 0, 5, 7].item<byte>());
        Assert.Equal((9 + 100 + 31 + 2) % 256, data.Images[1, 2, 31, 2].item<byte>());
        Assert.Equal((9 + 50 + 1 + 0) % 256, data.Images[1, 1, 1, 0].item<byte>());
    }

    [Fact]
    public void FolderSplitsOrderBatchesByNumberAndReadsMetaNames()
    {
        WriteBatch("data_batch_10.bin", 2);
        WriteBatch("data_batch_2.bin", 1);
        WriteBatch("data_batch_1.bin", 0);
        WriteBatch("test_batch.bin", 2, 2, 1);
        File.WriteAllText(folder.File("batches.meta.txt"), "zero\none\n two \n\n");
        using var train = CifarReader.LoadFolder(folder.Path, DatasetSplit.Train);
        Assert.Equal(new long[] { 0, 1, 2 }, train.Labels);
        Assert.Equal(["zero", "one", "two"], train.ClassNames);
        using var test = CifarReader.LoadFolder(folder.Path, DatasetSplit.Test);
        Assert.Equal(new long[] { 2, 2, 1 }, test.Labels);

        // A label beyond the names of batches.meta.txt.
        WriteBatch("test_batch.bin", 5);
        var e = Assert.Throws<DiffuseException>(() => CifarReader.LoadFolder(folder.Path, DatasetSplit.Test));
        Assert.Contains("label 5", e.Message);
    }

    [Fact]
    public void WrongSizeNamesTheFileAndTheRecordCount()
    {
        string path = WriteBatch("data_batch_1.bin", 1, 2);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^100]);
        var e = Assert.Throws<DiffuseException>(() => CifarReader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("6,046 bytes", e.Message);
        Assert.Contains("enough for 1 record and 2,973 bytes more", e.Message);

        File.WriteAllBytes(path, []);
        e = Assert.Throws<DiffuseException>(() => CifarReader.Load(path));
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public void MissingFilesAreNamed()
    {
        var e = Assert.Throws<DiffuseException>(() => CifarReader.Load(folder.File("data_batch_9.bin")));
        Assert.Contains("does not exist", e.Message);
        e = Assert.Throws<DiffuseException>(() => CifarReader.LoadFolder(folder.Path, DatasetSplit.Train));
        Assert.Contains("data_batch_1.bin", e.Message);
        Assert.Throws<DiffuseException>(() => CifarReader.Load());
    }
}
