using System.Reflection;
using Diffuse.Randomness;

namespace Diffuse.Tests.Randomness;

public class StreamDomainsTests
{
    [Fact]
    public void TheDomainsOfOneKeySpaceNeverShareAStream()
    {
        foreach (var space in StreamDomains.All.GroupBy(d => d.Space))
        {
            var domains = space.OrderBy(d => d.Value).ToArray();
            for (int i = 1; i < domains.Length; i++)
            {
                var (low, high) = (domains[i - 1], domains[i]);
                Assert.True(high.Value - low.Value >= low.Span,
                    $"{space.Key}: {low.Name} ({low.Value:X}, {low.Span} streams) overlaps {high.Name} ({high.Value:X})");
            }
        }
    }

    [Fact]
    public void TheRegistryListsEveryConstantOnceWithItsValue()
    {
        var constants = typeof(StreamDomains).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral)
            .ToDictionary(f => f.Name, f => f.GetRawConstantValue() switch
            {
                int i => unchecked((ulong)(long)i),
                ulong u => u,
                var other => throw new InvalidOperationException($"{other?.GetType()}"),
            });
        Assert.Equal(constants.Keys.Order(), StreamDomains.All.Select(d => d.Name).Order());
        foreach (var domain in StreamDomains.All) Assert.Equal(constants[domain.Name], domain.Value);
        // The named families of NoiseDomains are the registry's values.
        Assert.Equal(StreamDomains.RePaintSteps, (ulong)NoiseDomain.RePaintSteps);
        Assert.Equal(StreamDomains.RePaintJumps, (ulong)NoiseDomain.RePaintJumps);
    }

    [Fact]
    public void TheValuesAreTheOnesEarlierResultsWereDrawnWith()
    {
        // Changing one would change every result drawn from it (and break resumed runs): these are pinned.
        Assert.Equal(0x7374726174UL, StreamDomains.BoundStrata);
        Assert.Equal(0x666C6970UL, StreamDomains.ImageFlip);
        Assert.Equal(0x70726563UL, StreamDomains.PrecisionRecallReference);
        Assert.Equal(0x72656665UL, StreamDomains.ImageReference);
        Assert.Equal(0x666C6F6FUL, StreamDomains.ImageFloor);
        Assert.Equal(0x6E6C6C73UL, StreamDomains.ImageLikelihood);
        Assert.Equal(0x64726F70UL, StreamDomains.TrainingDropoutMasks);
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, new[] { StreamDomains.TrainingLabelDropout, StreamDomains.TrainingTimesteps,
            StreamDomains.TrainingNoise, StreamDomains.TrainingPermutation, StreamDomains.TrainingEdmSigma });
        Assert.Equal((1UL, 2UL), (StreamDomains.OdeDequantization, StreamDomains.OdeFirstProbe));
        Assert.Equal((0UL, 1UL), (StreamDomains.InitialNoise, StreamDomains.FirstStepNoise));
        Assert.Equal((0, 1, -1, -3), (StreamDomains.MetricsGeneratedSubset, StreamDomains.MetricsFirstTrainingSubset,
            StreamDomains.MetricsSlicedDirections, StreamDomains.MetricsBandwidthSubset));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(-7)]
    [InlineData(123_456_789)]
    [InlineData(int.MinValue)]
    [InlineData(int.MaxValue)]
    public void TheSubtractiveSequenceDrawsWhatSeededSystemRandomDrew(int seed)
    {
        // The metrics' training subsets were drawn with System.Random(seed); the library's own generator keeps them.
        var reference = new System.Random(seed);
        var ours = new SubtractiveSequence(seed);
        for (int i = 0; i < 2000; i++)
        {
            if (i % 3 == 0) Assert.Equal(reference.NextDouble(), ours.NextDouble());
            else Assert.Equal(reference.Next(i % 7, 5000 + i), ours.Next(i % 7, 5000 + i));
        }
    }

    [Fact]
    public void NoSourceFileUsesSystemRandom()
    {
        // Every random value is a counter-based draw (SeededNoise) of a registered domain: System.Random's sequence is
        // neither keyed by sample index nor specified across runtimes.
        string src = Path.GetDirectoryName(LibrarySource.Folder)!;
        var offenders = LibrarySource.CodeOf(src)
            .Where(f => f.Code.Contains("System.Random", StringComparison.Ordinal) || f.Code.Contains("newRandom(", StringComparison.Ordinal)
                        || f.Code.Contains("Random.Shared", StringComparison.Ordinal) || f.Code.Contains("(Randomrandom", StringComparison.Ordinal))
            .Select(f => f.File)
            .ToArray();
        Assert.True(offenders.Length == 0, $"System.Random in: {string.Join(", ", offenders)}");
    }
}
