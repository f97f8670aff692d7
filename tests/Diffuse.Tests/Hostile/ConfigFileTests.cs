using System.Diagnostics;
using System.Text.Json.Nodes;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// A damaged or hostile config.json is refused at load, before any tensor is allocated, with one message that names the
/// file and the field.
/// </summary>
public class ConfigFileTests(HostileModels models) : IClassFixture<HostileModels>
{
    /// <summary>Applies <paramref name="edit"/> to a copy of the table model's config.json and loads it.</summary>
    internal static DiffuseException LoadEdited(string model, Action<JsonNode> edit, out long milliseconds)
    {
        using var dir = new TempDir();
        string copy = HostileModels.Copy(model, dir.Path);
        EditConfig(copy, edit);
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<DiffuseException>(() => DiffusionModel.Load(copy).Dispose());
        milliseconds = clock.ElapsedMilliseconds;
        Assert.Contains(copy, error.Message);
        return error;
    }

    internal static void EditConfig(string folder, Action<JsonNode> edit)
    {
        string path = Path.Combine(folder, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    public static TheoryData<string, string, string> Edits() => new()
    {
        { "data.mean shorter than the columns", """{"data":{"mean":[0.5]}}""", "data.mean has 1 values but data.columns has 2" },
        { "data.std shorter than the columns", """{"data":{"std":[1.0]}}""", "data.std has 1 values but data.columns has 2" },
        { "data.min of the wrong length", """{"data":{"min":[0,0,0]}}""", "data.min has 3 values but data.columns has 2" },
        { "data.max of the wrong length", """{"data":{"max":[1]}}""", "data.max has 1 values but data.columns has 2" },
        { "a zero standard deviation", """{"data":{"std":[1.0, 0]}}""", "data.std[1] is 0" },
        { "min above max", """{"data":{"min":[5, 0], "max":[1, 1]}}""", "data.min[0] = 5 and data.max[0] = 1" },
        { "width 10⁹", """{"network":{"width":1000000000}}""", "network.width is 1,000,000,000, above the limit of 65,536" },
        { "depth 10⁶", """{"network":{"depth":1000000}}""", "network.depth is 1,000,000, above the limit of 1,024" },
        { "10⁹ timesteps", """{"schedule":{"timesteps":1000000000}}""", "schedule.timesteps is 1,000,000,000, above the limit of 100,000" },
        { "a network of 4·10⁹ parameters", """{"network":{"width":60000, "depth":1000}}""", "parameters, above the limit of 1,073,741,824" },
        { "a prediction that is no prediction", """{"prediction":7}""", "unknown prediction 7" },
    };

    [Theory]
    [MemberData(nameof(Edits))]
    public void IsRefusedInMillisecondsNamingTheFieldAndTheFile(string what, string patch, string expected)
    {
        var error = LoadEdited(models.Table, json => Merge(json, JsonNode.Parse(patch)!), out long ms);
        Assert.Contains(expected, error.Message);
        Assert.Contains("config.json is not a usable model config", error.Message);
        Assert.True(ms < 1000, $"{what}: {ms} ms");
    }

    [Fact]
    public void AConfigThatDoesNotMatchTheWeightsHeaderFailsBeforeBuildingTheNetwork()
    {
        // Width 4096 is within the limits; the weights hold width 16. The header says so before 4096² floats are allocated.
        var error = LoadEdited(models.Table, json => json["network"]!["width"] = 4096, out long ms);
        Assert.Contains("does not fit this model", error.Message);
        Assert.Contains("key 'input.weight': checkpoint has [16, 2], model expects [4096, 2]", error.Message);
        Assert.True(ms < 1000, $"{ms} ms");
    }

    internal static void Merge(JsonNode target, JsonNode patch)
    {
        foreach (var (key, value) in patch.AsObject())
        {
            if (value is JsonObject child && target[key] is JsonObject existing) Merge(existing, child);
            else target[key] = value?.DeepClone();
        }
    }
}
