using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Training;

public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "diffuse-test-" + Guid.NewGuid().ToString("N")));
    public string Path { get; }
    public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
}

public class TrainerTests
{
    private static TrainingConfig Small(int steps) => new(Steps: steps, BatchSize: 128, LearningRate: 2e-3, WarmupSteps: 10, CheckpointEvery: 1000);

    private static Trainer NewTrainer(Tensor data, int steps) =>
        Trainer.Create(data, "moons", Small(steps), new ScheduleConfig(ScheduleKind.Linear, 100), network: new Diffuse.Models.MlpConfig(2, Width: 32, Depth: 2, TimeEmbedding: 16));

    private static float[] Weights(Trainer trainer) =>
        trainer.Network.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();

    [Fact]
    public void SameSeedGivesTheSameRunAndResumeEqualsTheUninterruptedRun()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 1000, 0);
        using var full = NewTrainer(data, 40);
        full.Run();
        using var again = NewTrainer(data, 40);
        again.Run();
        Assert.Equal(Weights(full), Weights(again));

        // 15 steps, save, resume in a new trainer, 25 more: identical weights, EMA, losses.
        using (var first = NewTrainer(data, 40)) { first.Run(folder: dir.Path, stopAtStep: 15); }
        using var resumed = Trainer.Resume(dir.Path, data);
        Assert.Equal(15, resumed.Step);
        resumed.Run(folder: dir.Path);
        Assert.Equal(Weights(full), Weights(resumed));
        Assert.Equal(full.Losses.Select(l => l.Loss), resumed.Losses.Select(l => l.Loss));
        var emaFull = full.Ema.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();
        var emaResumed = resumed.Ema.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();
        Assert.Equal(emaFull, emaResumed);
    }

    [Fact]
    public void ResumeRejectsOtherData()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using (var t = NewTrainer(data, 3)) t.Run(folder: dir.Path);
        using var other = ToyData.Sample(ToyDistribution.Moons, 500, 1);
        var e = Assert.Throws<DiffuseException>(() => Trainer.Resume(dir.Path, other));
        Assert.Contains("not the data", e.Message);
    }

    [Fact]
    public void SaveThenLoadGivesIdenticalSamples()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = NewTrainer(data, 20);
        trainer.Run(folder: dir.Path);
        var options = new SamplerOptions(SamplerKind.Ddpm, 20);
        using var scope = NewDisposeScope();
        using var inMemory = trainer.ToModel();
        var a = inMemory.Sample(50, 9, options);
        using var loaded = DiffusionModel.Load(dir.Path);
        var b = loaded.Sample(50, 9, options);
        Assert.True(a.eq(b).all().item<bool>());
        Assert.Equal(trainer.Config.Data.Mean, loaded.Config.Data.Mean);
        Assert.Equal(20, loaded.Config.Step);
    }

    [Fact]
    public void LoadingACheckpointOfAnotherShapeSaysWhatDoesNotFit()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using (var t = NewTrainer(data, 2)) t.Run(folder: dir.Path);
        // Change the recorded width: the weights no longer fit the network the config describes.
        string configPath = Path.Combine(dir.Path, ModelFolder.ConfigFile);
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"width\": 32", "\"width\": 48"));
        var e = Assert.Throws<DiffuseException>(() => DiffusionModel.Load(dir.Path));
        Assert.Contains("input.weight", e.Message);
        Assert.Contains("[32, 2]", e.Message);
    }

    [Fact]
    public void TrainingAndSamplingKeepNativeMemoryFlat()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = NewTrainer(data, 60);
        for (int i = 0; i < 10; i++) trainer.TrainStep();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 50; i++) trainer.TrainStep();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        using var model = trainer.ToModel();
        model.Sample(10, 1, new SamplerOptions(SamplerKind.Ddim, 10)).Dispose();
        long beforeSampling = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++) model.Sample(10, 1, new SamplerOptions(SamplerKind.Ddpm)).Dispose();
        Assert.Equal(beforeSampling, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void LearningRateWarmsUpThenDecaysToZero()
    {
        var config = new TrainingConfig(Steps: 1000, LearningRate: 1.0, WarmupSteps: 100);
        Assert.Equal(0.01, config.LearningRateAt(0), 12);
        Assert.Equal(1.0, config.LearningRateAt(99), 12);
        Assert.Equal(0.5, config.LearningRateAt(550), 6);
        Assert.True(config.LearningRateAt(999) < 1e-4);
    }
}
