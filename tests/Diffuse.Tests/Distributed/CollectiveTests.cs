using Diffuse.Cli;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Distributed;
using Diffuse.Schedules;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Distributed;

/// <summary>A rank of a pretend job for in-process checks: it fails loudly if a collective is actually called.</summary>
internal sealed class PretendCollective(int rank, int size) : ICollective
{
    public int Rank => rank;
    public int Size => size;
    public string Description => $"a pretend job ({size} processes)";
    public void AllReduceSum(Span<float> values) => throw new NotSupportedException("pretend collective");
    public void AllReduceSum(Span<double> values) => throw new NotSupportedException("pretend collective");
    public void Broadcast(Span<byte> data, int root = 0) => throw new NotSupportedException("pretend collective");
    public void Barrier() => throw new NotSupportedException("pretend collective");
    public void Abort(int exitCode) => throw new NotSupportedException("pretend collective");
    public void Dispose() { }
}

public class CollectiveTests
{
    [Fact]
    public void ShardsSplitTheGlobalBatchContiguouslyInRankOrderWithSizesDifferingByAtMostOne()
    {
        for (int batch = 0; batch <= 130; batch++)
        {
            for (int size = 1; size <= 9; size++)
            {
                int next = 0, smallest = int.MaxValue, largest = 0;
                for (int rank = 0; rank < size; rank++)
                {
                    var shard = Collective.Shard(batch, rank, size);
                    Assert.Equal(next, shard.Start);
                    Assert.True(shard.Count >= 0);
                    next = shard.End;
                    smallest = Math.Min(smallest, shard.Count);
                    largest = Math.Max(largest, shard.Count);
                }
                Assert.Equal(batch, next);
                Assert.True(largest - smallest <= 1, $"B={batch}, N={size}: shards of {smallest} and {largest}");
            }
        }
        Assert.Equal(new BatchShard(0, 32), Collective.Shard(65, 0, 2));
        Assert.Equal(new BatchShard(32, 65), Collective.Shard(65, 1, 2));
        Assert.Equal(new BatchShard(43, 65), Collective.Shard(65, 2, 3));
        // No overflow for large batches on many ranks.
        Assert.Equal(int.MaxValue, Collective.Shard(int.MaxValue, 1023, 1024).End);
        Assert.Throws<ArgumentOutOfRangeException>(() => Collective.Shard(10, 2, 2));
    }

    [Fact]
    public void MpiIsUsedOnlyWhenAnMpiLauncherStartedTheProcess()
    {
        static Func<string, string?> Env(params (string Key, string Value)[] pairs) =>
            key => pairs.FirstOrDefault(p => p.Key == key).Value;
        Assert.False(Collective.IsMpiLaunch(Env()));
        Assert.True(Collective.IsMpiLaunch(Env(("PMI_RANK", "1"), ("PMI_SIZE", "2"))));        // MPICH's Hydra
        Assert.True(Collective.IsMpiLaunch(Env(("PMIX_RANK", "0"))));                           // PMIx launchers
        Assert.True(Collective.IsMpiLaunch(Env(("OMPI_COMM_WORLD_SIZE", "4"))));               // Open MPI
        Assert.False(Collective.IsOpenMpiLaunch(Env(("PMI_RANK", "0"))));

        Assert.Equal("libmpich.so.12", MpiCollective.LibraryCandidates(Env(("PMI_RANK", "0")))[0]);
        Assert.Equal("libmpi.so.40", MpiCollective.LibraryCandidates(Env(("OMPI_COMM_WORLD_SIZE", "2")))[0]);
        Assert.Equal(new[] { "/opt/mpi/lib/libmpi.so" },
            MpiCollective.LibraryCandidates(Env(("PMI_RANK", "0"), (MpiCollective.LibraryVariable, "/opt/mpi/lib/libmpi.so"))));

        // This test process was not started by mpiexec (the tests start their own MPI jobs).
        Assert.Same(SingleProcessCollective.Instance, Collective.FromEnvironment());
    }

    [Fact]
    public void TheSingleProcessCollectiveLeavesEveryBufferAsItIs()
    {
        var single = SingleProcessCollective.Instance;
        Assert.Equal((0, 1), (single.Rank, single.Size));
        float[] floats = { 1.5f, -2 };
        double[] doubles = { 3.25 };
        byte[] bytes = { 7, 8 };
        single.AllReduceSum(floats);
        single.AllReduceSum(doubles);
        single.Broadcast(bytes);
        single.Barrier();
        Assert.Equal(new[] { 1.5f, -2 }, floats);
        Assert.Equal(new[] { 3.25 }, doubles);
        Assert.Equal(new byte[] { 7, 8 }, bytes);
        Assert.Equal("text", single.BroadcastString("text"));
        Assert.Throws<ArgumentOutOfRangeException>(() => single.Broadcast(bytes, root: 1));
        using var t = tensor(new[] { 1f, 2f });
        single.AllReduceSum(t);
        Assert.Equal(new[] { 1f, 2f }, t.data<float>().ToArray());
    }

    [Fact]
    public void TensorCollectivesWorkOnTheTensorsOwnMemory()
    {
        // A two-rank sum seen from one rank: the other rank contributes the same values, so the sum doubles them.
        var doubling = new DoublingCollective();
        using var values = tensor(new[] { 1f, 2.5f, -4f });
        doubling.AllReduceSum(values);
        Assert.Equal(new[] { 2f, 5f, -8f }, values.data<float>().ToArray());
        using var strided = zeros(4, 4).t();
        Assert.Throws<ArgumentException>(() => doubling.AllReduceSum(strided));
        using var doubles = zeros(3, dtype: ScalarType.Float64);
        Assert.Throws<ArgumentException>(() => doubling.AllReduceSum(doubles));
    }

    private sealed class DoublingCollective : ICollective
    {
        public int Rank => 0;
        public int Size => 2;
        public string Description => "doubling";
        public void AllReduceSum(Span<float> values) { foreach (ref var v in values) v *= 2; }
        public void AllReduceSum(Span<double> values) { foreach (ref var v in values) v *= 2; }
        public void Broadcast(Span<byte> data, int root = 0) { }
        public void Barrier() { }
        public void Abort(int exitCode) => throw new NotSupportedException();
        public void Dispose() { }
    }

    [Fact]
    public void AGlobalBatchSmallerThanTheNumberOfProcessesIsAUserError()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 100, 0);
        var e = Assert.Throws<DiffuseException>(() => Trainer.Create(data, "moons", new TrainingConfig(Steps: 5, BatchSize: 3),
            new ScheduleConfig(ScheduleKind.Linear, 20), collective: new PretendCollective(0, 4)));
        Assert.Contains("TrainingConfig.BatchSize 3", e.Message);
        Assert.Contains("(4)", e.Message);
    }

    [Fact]
    public void GradientsLiveInOneFlatBufferAndAreClippedByTheirGlobalNorm()
    {
        // The trainer all-reduces one flat buffer of which every parameter's gradient is a view. If backward had
        // replaced a gradient by a new tensor, the buffer (and so the norm and the clipping) would miss it.
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = Trainer.Create(data, "moons", new TrainingConfig(Steps: 5, BatchSize: 64, GradientClip: 0.1),
            new ScheduleConfig(ScheduleKind.Linear, 50), network: new Diffuse.Models.MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 16));
        for (int step = 0; step < 3; step++)
        {
            trainer.TrainStep();
            double clipped = Math.Sqrt(trainer.Network.parameters().Sum(p => p.grad!.square().sum().item<float>()));
            Assert.True(trainer.LastGradientNorm > 0.2, $"gradient norm {trainer.LastGradientNorm}");
            Assert.Equal(0.1, clipped, 4);
        }
    }

    [Fact]
    public void OnlyTrainRunsOnSeveralProcessesAndOtherRanksStayQuietButNameThemselvesWhenTheyFail()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(new[] { "sample", "--model", "nowhere", "--out", "x.csv" }, stdout, stderr, collective: new PretendCollective(1, 2));
        Assert.Equal(1, code);
        Assert.Equal("", stdout.ToString());
        Assert.StartsWith("error: rank 1 of 2: 'diffuse sample' runs on one process only", stderr.ToString());

        stderr = new StringWriter();
        code = Program.Run(new[] { "--help" }, stdout, stderr, collective: new PretendCollective(1, 2));
        Assert.Equal(0, code);
        Assert.Equal("", stdout.ToString() + stderr.ToString());   // help is printed by rank 0 only
        Assert.Same(SingleProcessCollective.Instance, RunAndGetCollective());
    }

    private static ICollective RunAndGetCollective()
    {
        Program.Run(new[] { "--version" }, TextWriter.Null, TextWriter.Null);
        return CliContext.Collective;
    }
}
