using Diffuse.Data;
using Diffuse.Imaging;
using Diffuse.Tests.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// Outputs are streamed and atomic: sampling writes batch by batch, a failure part-way leaves no partial output, and
/// the temporary files of an interrupted write are removed the next time the folder is written.
/// </summary>
public class OutputTests(HostileModels models) : IClassFixture<HostileModels>
{
    [Fact]
    public void SampleBatchesAreTheSamplesOfSampleInOrderEachOwnedByTheCaller()
    {
        using var model = DiffusionModel.Load(models.Table);
        var options = new Diffuse.Sampling.SamplerOptions(Diffuse.Sampling.SamplerKind.Ddim, Steps: 3);
        using var all = model.Sample(25, seed: 4, options, first: 3);
        var batches = model.SampleBatches(25, seed: 4, options, first: 3, batchSize: 10).ToList();
        try
        {
            Assert.Equal(new long[] { 10, 10, 5 }, batches.Select(b => b.shape[0]));
            using var joined = cat(batches, 0);
            Assert.Equal(all.data<float>().ToArray(), joined.data<float>().ToArray());
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
        // Arguments are checked when called, before any batch is drawn.
        Assert.Throws<DiffuseException>(() => model.SampleBatches(0, seed: 0));
    }

    [Fact]
    public void ACsvWrittenFromBlocksAppearsOnlyWhenComplete()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "s.csv");
        IEnumerable<float[,]> Blocks(bool fail)
        {
            yield return new float[,] { { 1, 2 }, { 3, 4 } };
            if (fail) throw new DiffuseException("stopped part-way");
            yield return new float[,] { { 5, 6 } };
        }
        Assert.Throws<DiffuseException>(() => CsvTable.Save(path, ["a", "b"], Blocks(fail: true)));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        CsvTable.Save(path, ["a", "b"], Blocks(fail: false));
        Assert.Equal("a,b\n1,2\n3,4\n5,6\n", File.ReadAllText(path));
        var nan = Assert.Throws<DiffuseException>(() => CsvTable.Save(path, ["a", "b"], [new float[,] { { 1, float.NaN } }]));
        Assert.Contains("row 1, column 2 ('b') is NaN", nan.Message);
        Assert.Equal("a,b\n1,2\n3,4\n5,6\n", File.ReadAllText(path));
    }

    [Fact]
    public void APngFolderAppearsOnlyWhenEverySampleIsWritten()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "pngs");
        IEnumerable<Tensor> Batches()
        {
            yield return zeros(2, 1, 4, 4);
            throw new OperationCanceledException();
        }
        Assert.Throws<OperationCanceledException>(() => Diffuse.Cli.SamplesFolder.Write(folder, Batches(), i => $"{i}.png"));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));

        var sample = Cli.Cli.Run("sample", "--model", models.Image, "--out", folder, "--count", "300", "--class", "1", "--sampler", "ddim", "--steps", "1");
        Assert.True(sample.Code == 0, sample.Err);
        Assert.Equal(300, Directory.GetFiles(folder).Length);
        Assert.Equal(["pngs"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void TemporaryFilesOfDeadProcessesAreRemovedWhenTheFolderIsNextWrittenAndReported()
    {
        using var dir = new TempDir();
        // A process id that is not running: a child that has exited.
        using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true") { UseShellExecute = false })!;
        child.WaitForExit();
        int dead = child.Id;
        string stale = Path.Combine(dir.Path, $".s.csv.{dead}.{Guid.NewGuid():N}.tmp");
        string staleFolder = Path.Combine(dir.Path, $".pngs.{dead}.{Guid.NewGuid():N}.tmp");
        string live = Path.Combine(dir.Path, $".other.csv.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        string unrelated = Path.Combine(dir.Path, ".notes.tmp");
        File.WriteAllText(stale, "half a file");
        Directory.CreateDirectory(staleFolder);
        File.WriteAllText(Path.Combine(staleFolder, "0.png"), "x");
        File.WriteAllText(live, "being written");
        File.WriteAllText(unrelated, "mine");

        var result = Cli.Cli.Run("sample", "--model", models.Table, "--out", Path.Combine(dir.Path, "s.csv"), "--count", "5", "--sampler", "ddim", "--steps", "2");
        Assert.True(result.Code == 0, result.Err);
        Assert.False(File.Exists(stale));
        Assert.False(Directory.Exists(staleFolder));
        Assert.True(File.Exists(live) && File.Exists(unrelated));
        Assert.Contains($"removed '{stale}', a temporary file left by an interrupted run", result.Err);

        // The imaging writer cleans the same way.
        string imageDir = Directory.CreateDirectory(Path.Combine(dir.Path, "img")).FullName;
        string staleImage = Path.Combine(imageDir, $".grid.png.{dead}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(staleImage, "x");
        var removed = new List<string>();
        OutputFiles.StaleFileRemoved += removed.Add;
        try
        {
            Figures.SaveImageGrid(Path.Combine(imageDir, "grid.png"), new float[16], 1, 1, 4, 4, 1);
        }
        finally
        {
            OutputFiles.StaleFileRemoved -= removed.Add;
        }
        Assert.Equal([staleImage], removed);
        Assert.False(File.Exists(staleImage));
    }
}
